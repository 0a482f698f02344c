"""Task-mode executions on the real Docker engine."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from hyperai_provider.core.gears import GearService
from hyperai_provider.core.settings import HyperAISettings
from hyperai_provider.exceptions import (
    ConfigurationError,
    EngineError,
    ExecutionFailedError,
    ImageNotFoundError,
)
from hyperai_provider.models import ExecutionState
from hyperai_provider.models.spec import ExecutionSpec
from tests.conftest import managed_names, wait_for_state

pytestmark = pytest.mark.docker


def task(**fields) -> ExecutionSpec:  # type: ignore[no-untyped-def]
    return ExecutionSpec.model_validate({"gear": "t", "image": "python", "compute_type": "cpu", **fields})


def test_code_runs_in_home_and_the_working_directory_is_saved(
    docker_service: GearService, tmp_path: Path
) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "job.py").write_text(
        "import json, os, sys\n"
        "print('cwd', os.getcwd())\n"
        "print('args', sys.argv[1:])\n"
        "open('result.txt', 'w').write('written in home')\n"
        "open('/output/via_output.txt', 'w').write('written via /output')\n"
        "print('env', os.environ['HYPERAI_GEAR'], os.environ['HYPERAI_EXECUTION_ID'], os.environ['HYPERAI_HOME'])\n"
        "print('params', json.load(open('hyperai_params.json')) == json.load(open('openbayes_params.json')))\n"
    )
    lines: list[str] = []
    record = docker_service.run(
        task(code=code, command="python3 job.py", parameters={"lr": 0.5, "tag": "a b"}), on_line=lines.append
    )
    assert record.state is ExecutionState.SUCCEEDED and record.exit_code == 0
    assert record.id == "t/1"
    assert "cwd /hyperai/home" in lines
    assert "args ['--lr=0.5', '--tag=a b']" in lines
    assert "env t t/1 /hyperai/home" in lines
    assert "params True" in lines
    home = docker_service.workdir(record)
    assert (home / "result.txt").read_text() == "written in home"
    assert (home / "via_output.txt").read_text() == "written via /output"
    assert json.loads((home / "hyperai_params.json").read_text()) == {"lr": 0.5, "tag": "a b"}
    assert record.bytes_stored and record.bytes_stored > 0
    assert docker_service.storage.is_saved("t", 1)
    assert "cwd /hyperai/home" in docker_service.storage.log_path("t", 1).read_text()
    assert [c.state for c in record.history] == [
        ExecutionState.PREPARING,
        ExecutionState.RUNNING,
        ExecutionState.SAVING,
        ExecutionState.SUCCEEDED,
    ]
    assert record.container_name not in managed_names()


def test_each_execution_has_its_own_working_directory(docker_service: GearService) -> None:
    first = docker_service.run(task(command="echo one > f.txt"), on_line=lambda _: None)
    second = docker_service.run(task(command="test ! -e f.txt && echo two > f.txt"), on_line=lambda _: None)
    assert (first.number, second.number) == (1, 2)
    assert (docker_service.workdir(first) / "f.txt").read_text() == "one\n"
    assert (docker_service.workdir(second) / "f.txt").read_text() == "two\n"


def test_failure_carries_exit_code_and_last_lines_and_removes_the_container(
    docker_service: GearService,
) -> None:
    with pytest.raises(ExecutionFailedError) as caught:
        docker_service.run(
            task(command="echo about to fail; echo details >&2; exit 3"), on_line=lambda _: None
        )
    error = caught.value
    assert error.exit_code == 3 and error.execution_id == "t/1"
    assert "about to fail" in str(error) and "details" in str(error)
    record = docker_service.get("t/1")
    assert record.state is ExecutionState.FAILED
    assert record.failure_reason == "the command exited with code 3"
    assert managed_names(docker_service.settings.storage_root) == set()


def test_out_of_memory_is_named(docker_service: GearService) -> None:
    (docker_service.settings.storage_root / "compute_types.yaml").write_text(
        "small:\n  cpus: 0.5\n  memory: 64MiB\n  disk_quota: 1GiB\n"
    )
    with pytest.raises(ExecutionFailedError, match="out of memory"):
        docker_service.run(
            task(
                compute_type="small", command="python3 -c 'x = bytearray(512 * 1024 * 1024); print(len(x))'"
            ),
            on_line=lambda _: None,
        )
    assert "out of memory" in (docker_service.get("t/1").failure_reason or "")


def test_compute_type_limits_are_hard_limits(docker_service: GearService) -> None:
    (docker_service.settings.storage_root / "compute_types.yaml").write_text(
        "half:\n  cpus: 0.5\n  memory: 300MiB\n  disk_quota: 1GiB\n"
    )
    lines: list[str] = []
    docker_service.run(
        task(
            compute_type="half",
            command="cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us "
            "/sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/cpu.max /sys/fs/cgroup/memory.max",
        ),
        on_line=lines.append,
    )
    lines = [line for line in lines if not line.startswith("[hyperai]")]
    assert str(300 * 1024**2) in lines
    assert lines[:2] == ["50000", "100000"] or lines[0] == "50000 100000"


def test_logs_stream_while_the_container_runs(docker_service: GearService) -> None:
    arrivals: list[tuple[float, str]] = []
    started = time.monotonic()
    docker_service.run(
        task(command="echo first; sleep 2; echo second"),
        on_line=lambda line: arrivals.append((time.monotonic() - started, line)),
    )
    times = {line: at for at, line in arrivals}
    assert times["second"] - times["first"] >= 1.5


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ({"compute_type": "h100"}, ConfigurationError, "Unknown compute type 'h100'"),
        ({"compute_type": "huge-cpus"}, ConfigurationError, "asks for 4096 CPUs; the Docker engine has"),
        ({"image": "hyperai/does-not-exist:1", "pull": "never"}, ImageNotFoundError, "pulling is disabled"),
        ({"image": "hyperai/does-not-exist:1"}, ImageNotFoundError, "could not be pulled"),
        ({"image": "nonsense"}, ImageNotFoundError, "not a catalog name"),
        ({"code": Path("/definitely/missing")}, ConfigurationError, "does not exist"),
    ],
    ids=[
        "unknown-compute",
        "too-big-for-engine",
        "missing-image",
        "unpullable-image",
        "unknown-image-name",
        "missing-code",
    ],
)
def test_bad_input_fails_before_any_container_or_record(
    docker_service: GearService, fields: dict[str, object], error: type[Exception], message: str
) -> None:
    root = docker_service.settings.storage_root
    (root / "compute_types.yaml").write_text("huge-cpus:\n  cpus: 4096\n  memory: 1GiB\n  disk_quota: 1GiB\n")
    with pytest.raises(error, match=message):
        docker_service.run(task(command="true", **fields))
    assert managed_names(root) == set()
    assert docker_service.executions() == []


def test_compute_type_with_more_memory_than_the_engine_is_refused(docker_service: GearService) -> None:
    (docker_service.settings.storage_root / "compute_types.yaml").write_text(
        "huge-memory:\n  cpus: 1\n  memory: 64TiB\n  disk_quota: 1GiB\n"
    )
    with pytest.raises(
        ConfigurationError, match=r"asks for 64.0TiB of memory; the Docker engine has [0-9.]+ ?GiB"
    ):
        docker_service.run(task(compute_type="huge-memory", command="true"))
    assert docker_service.executions() == []


def test_gpu_compute_type_without_nvidia_runtime_is_refused_before_create(
    docker_service: GearService,
) -> None:
    client = docker_service.runner.client
    if "nvidia" in (client.info().get("Runtimes") or {}):
        pytest.skip("this engine has an NVIDIA runtime")
    with pytest.raises(EngineError, match="has no NVIDIA runtime") as caught:
        docker_service.run(task(compute_type="t4", command="nvidia-smi"))
    assert "NVIDIA Container Toolkit" in str(caught.value)
    assert managed_names(docker_service.settings.storage_root) == set()


def test_unreachable_engine_is_explained(storage_root: Path) -> None:
    service = GearService(HyperAISettings(storage_root=storage_root, docker_host="unix:///nonexistent.sock"))
    with pytest.raises(EngineError, match="not reachable"):
        service.run(task(command="true"))


def test_stop_terminates_a_running_execution(docker_service: GearService) -> None:
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            docker_service.run(task(command="echo started; sleep 60"), on_line=lambda _: None)
        except ExecutionFailedError as error:
            outcome["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    wait_for_state(docker_service, "t/1", ExecutionState.RUNNING, 30, alive=thread.is_alive)
    stop_started = time.monotonic()
    docker_service.stop("t/1")
    thread.join(timeout=30)
    assert time.monotonic() - stop_started < 5
    record = docker_service.get("t/1")
    assert record.state is ExecutionState.TERMINATED
    assert "error" in outcome
