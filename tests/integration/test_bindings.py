"""Input bindings on the real engine: read-only mounts of dataset versions and working directories."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from hyperai_provider.core.gears import GearService
from hyperai_provider.exceptions import (
    ConfigurationError,
    ConflictError,
    ExecutionTerminatedError,
    NotFoundError,
)
from hyperai_provider.models import ExecutionState
from hyperai_provider.models.spec import build_spec
from tests.conftest import run_cli, wait_for_state

pytestmark = pytest.mark.docker


def task(service: GearService, inputs: dict[str, object] | None = None, **fields: object):  # type: ignore[no-untyped-def]
    return build_spec(
        gear="bind",
        image="python",
        compute_type="cpu",
        inputs=service.bindings_from(inputs or {}),
        **fields,
    )


def _dataset(service: GearService, tmp_path: Path) -> None:
    folder = tmp_path / "data"
    (folder / "train").mkdir(parents=True)
    (folder / "train" / "rows.csv").write_text("a,b\n1,2\n")
    service.datasets.create("blobs")
    service.datasets.add_version_from_dir("blobs", folder)


def test_dataset_and_upstream_workdir_are_bound_read_only(
    docker_service: GearService, tmp_path: Path
) -> None:
    _dataset(docker_service, tmp_path)
    upstream = docker_service.run(task(docker_service, command="mkdir model && echo weights > model/w.txt"))
    lines: list[str] = []
    script = (
        "cat /hyperai/input/input0/train/rows.csv; cat $HYPERAI_INPUT1/w.txt; echo $HYPERAI_INPUT0; "
        "for d in /hyperai/input/input0 /hyperai/input/input1 /hyperai/input/input2 /hyperai/input/input3; do "
        "touch $d/x 2>&1 || echo refused-$(basename $d); done; ls /hyperai/input/input0"
    )
    record = docker_service.run(
        task(
            docker_service,
            {
                "input0": "dataset:blobs@latest",
                "input1": {**docker_service.reference(upstream).model_dump(), "sub_path": "model"},
                "input2": upstream.id,  # a whole working directory
                "input3": "dataset:blobs@1/train",
            },
            command=script,
        ),
        on_line=lines.append,
    )
    output = "\n".join(lines)
    assert "1,2" in output and "weights" in output and "/hyperai/input/input0" in lines
    assert output.count("Read-only file system") == 4  # every form of binding is read-only
    assert all(f"refused-input{n}" in output for n in range(4))
    assert record.inputs[0].source.version == 1  # 'latest' pinned in the record
    assert record.inputs[1].source.sub_path == "model"


def test_binding_by_execution_id_string_with_sub_path(docker_service: GearService) -> None:
    upstream = docker_service.run(task(docker_service, command="mkdir out && echo hello > out/msg"))
    lines: list[str] = []
    docker_service.run(
        task(docker_service, {"input2": f"{upstream.id}:out"}, command="cat /hyperai/input/input2/msg"),
        on_line=lines.append,
    )
    assert "hello" in lines


@pytest.mark.parametrize(
    ("inputs", "error", "message"),
    [
        ({"input5": "dataset:blobs"}, ConfigurationError, "unknown input slot"),
        ({"input0": "dataset:missing@1"}, NotFoundError, "Dataset 'missing' does not exist"),
        ({"input0": "dataset:blobs@9"}, NotFoundError, "has no version 9"),
        ({"input0": "bind/99"}, NotFoundError, "Execution 'bind/99' does not exist"),
        ({"input0": "dataset:blobs@1/../../.."}, ConfigurationError, "escapes its source"),
        ({"input0": "dataset:blobs@1/nope"}, ConfigurationError, "does not exist in its source"),
    ],
    ids=[
        "bad-slot",
        "unknown-dataset",
        "unknown-version",
        "unknown-execution",
        "escaping-sub-path",
        "missing-sub-path",
    ],
)
def test_bad_bindings_fail_before_any_container(
    docker_service: GearService,
    tmp_path: Path,
    inputs: dict[str, object],
    error: type[Exception],
    message: str,
) -> None:
    _dataset(docker_service, tmp_path)
    with pytest.raises(error, match=message):
        docker_service.run(task(docker_service, inputs, command="true"))
    assert docker_service.executions() == []


def test_the_same_slot_twice_is_refused() -> None:
    from hyperai_provider.models import DatasetSource, InputBinding

    binding = InputBinding(slot="input0", source=DatasetSource(name="d"))
    with pytest.raises(ConfigurationError, match="bound twice"):
        build_spec(gear="g", image="python", command="true", inputs=[binding, binding])


def test_a_running_execution_cannot_be_bound_and_its_dataset_cannot_be_deleted(
    docker_service: GearService, tmp_path: Path
) -> None:
    _dataset(docker_service, tmp_path)

    def run_until_stopped() -> None:
        with pytest.raises(ExecutionTerminatedError):
            docker_service.run(task(docker_service, {"input0": "dataset:blobs@1"}, command="sleep 30"))

    worker = threading.Thread(target=run_until_stopped, daemon=True)
    worker.start()
    wait_for_state(docker_service, "bind/1", ExecutionState.RUNNING, 30, alive=worker.is_alive)
    try:
        with pytest.raises(ConflictError, match="is still running"):
            docker_service.run(task(docker_service, {"input1": "bind/1"}, command="true"))
        with pytest.raises(ConflictError, match="bound by running execution"):
            docker_service.datasets.delete_version("blobs", 1)
        with pytest.raises(ConflictError, match="bound by running execution"):
            docker_service.datasets.delete("blobs")
    finally:
        docker_service.stop("bind/1")
        worker.join(timeout=30)
    assert docker_service.datasets.delete_version("blobs", 1) > 0


def test_a_working_directory_becomes_a_dataset_version_without_copying(docker_service: GearService) -> None:
    record = docker_service.run(task(docker_service, command="mkdir data && seq 1000 > data/numbers.txt"))
    docker_service.datasets.create("numbers")
    version = docker_service.datasets.add_version_from_execution("numbers", record.id)
    assert version.source == f"execution:{record.id}" and version.files >= 1
    shared = docker_service.storage.dataset_version_dir("numbers", 1) / "data" / "numbers.txt"
    original = docker_service.workdir(record) / "data" / "numbers.txt"
    assert shared.stat().st_ino == original.stat().st_ino  # the same file, not a copy


def test_cli_creates_and_shows_datasets(storage_root: Path, tmp_path: Path) -> None:
    folder = tmp_path / "up"
    folder.mkdir()
    (folder / "a.txt").write_text("x" * 1000)
    assert run_cli("dataset", "create", "cli-ds", storage_root=storage_root).returncode == 0
    added = run_cli("dataset", "version", "add", "cli-ds", str(folder), storage_root=storage_root)
    assert added.returncode == 0, added.stderr
    assert "cli-ds@1" in added.stdout and "MB/s" in added.stderr
    shown = run_cli("dataset", "show", "cli-ds", "--json", storage_root=storage_root)
    assert '"version": 1' in shown.stdout
    listed = run_cli("datasets", storage_root=storage_root)
    assert "cli-ds" in listed.stdout
    refused = run_cli("dataset", "delete", "cli-ds", storage_root=storage_root)
    assert refused.returncode != 0 and "--yes" in refused.stderr
    missing = run_cli("dataset", "show", "nope", storage_root=storage_root)
    assert missing.returncode == 3 and "does not exist" in missing.stderr
    assert run_cli("dataset", "delete", "cli-ds", "--yes", storage_root=storage_root).returncode == 0


def test_hyperai_run_runs_a_project_folder(
    storage_root: Path, tmp_path: Path, docker_engine, base_image: str
) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "main.py").write_text(
        "import json, sys\nprint('args', sys.argv[1:]); print('params', json.load(open('openbayes_params.json')))\n"
    )
    (project / "openbayes.yaml").write_text(
        "resource: cpu\nenv: python\ncommand: python3 main.py\nparameters:\n  epochs: 2\n"
    )
    result = run_cli("run", str(project), storage_root=storage_root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "args ['--epochs=2']" in result.stdout and "params {'epochs': 2}" in result.stdout
    assert "execution proj/1 succeeded" in result.stdout


def test_another_users_private_working_directory_cannot_be_bound_or_published(
    docker_service: GearService,
) -> None:
    theirs = docker_service.run(
        build_spec(gear="bind-private", image="python", command="echo secret > s", owner="someone-else")
    )
    with pytest.raises(NotFoundError, match="does not exist"):
        docker_service.run(task(docker_service, {"input0": theirs.id}, command="true"))
    docker_service.datasets.create("stolen")
    with pytest.raises(NotFoundError, match="does not exist"):
        docker_service.datasets.add_version_from_execution("stolen", theirs.id)
    assert [r.id for r in docker_service.executions("bind")] == []


def test_cli_adds_a_version_from_an_execution_and_deletes_it(
    docker_service: GearService, storage_root: Path
) -> None:
    record = docker_service.run(task(docker_service, command="echo 42 > answer.txt"))
    as_alice = {"HYPERAI_USER": "alice"}
    assert run_cli("dataset", "create", "answers", storage_root=storage_root, env=as_alice).returncode == 0
    added = run_cli(
        "dataset", "version", "add", "answers", "--from-execution", record.id,
        storage_root=storage_root, env=as_alice,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    linked = docker_service.storage.dataset_version_dir("answers", 1) / "answer.txt"
    assert linked.stat().st_ino == (docker_service.workdir(record) / "answer.txt").stat().st_ino
    as_bob = run_cli(
        "dataset", "version", "add", "answers", "--from-execution", record.id,
        storage_root=storage_root, env={"HYPERAI_USER": "bob"},
    )  # fmt: skip
    assert as_bob.returncode != 0 and "does not exist" in as_bob.stderr  # alice's gear is private
    deleted = run_cli(
        "dataset", "version", "delete", "answers", "1", "--yes", storage_root=storage_root, env=as_alice
    )  # fmt: skip
    assert deleted.returncode == 0, deleted.stderr
    assert not linked.exists() and (docker_service.workdir(record) / "answer.txt").read_text() == "42\n"
