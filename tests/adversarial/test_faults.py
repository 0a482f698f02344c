"""Faults that used to lose data or wedge records, reproduced on the real engine (issue 11).

- A NaN parameter wrote a record nobody could read back: from then on ``executions``, ``gears``, ``show``
  and ``delete`` crashed for every user. Now it is refused before anything exists, and a row made
  unreadable anyway is skipped by listings (with a warning), explained by ``show``, removed by ``delete``.
- A worker killed in ``created``/``preparing``/``synchronizing`` left a record that ``gc``, ``stop`` and
  ``delete`` could never clear, and SIGTERM or ``stop`` during ``preparing`` was ignored (the container
  started anyway). Now the runner is recorded at creation and every step up to the start checks for a stop.
- A full storage root: an upload died with a raw OSError leaving its copy in ``tmp/``, and an execution
  that filled the disk left its record open. Now both are ordinary, clear failures.
- The Docker engine going away mid-run failed the task with raw connection errors and left the record
  ``running``. Now the task fails with an EngineError naming the engine, and the record is closed.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from hyperai_provider.core.container import LABEL_EXECUTION, LABEL_STORAGE_ROOT
from hyperai_provider.core.gears import GearService
from hyperai_provider.core.runner import DockerRunner
from hyperai_provider.core.settings import HyperAISettings
from hyperai_provider.core.store import executions_table
from hyperai_provider.exceptions import EngineError, ExecutionFailedError, StorageError
from hyperai_provider.models import ExecutionState, Visibility
from hyperai_provider.models.spec import build_spec
from tests.conftest import BASE_IMAGE, SecondEngine, _need, managed_names, run_cli, wait_for_state

pytestmark = pytest.mark.docker

FULL_DISK = "The storage root is full"


def _spec(gear: str, **fields: object):  # type: ignore[no-untyped-def]
    return build_spec(**{"gear": gear, "image": "python", "compute_type": "cpu", **fields})


def _cli(root: Path, *args: str, user: str = "alice") -> subprocess.CompletedProcess[str]:
    return run_cli(*args, storage_root=root, env={"HYPERAI_USER": user})


def _project(folder: Path, yaml: str, files: int = 0) -> Path:
    """A project folder (openbayes.yaml) with ``files`` small files of code (a slow preparation)."""
    folder.mkdir(parents=True)
    (folder / "openbayes.yaml").write_text(yaml)
    _many_files(folder / "data", files)
    return folder


def _many_files(folder: Path, count: int) -> None:
    for start in range(0, count, 500):
        sub = folder / f"d{start // 500}"
        sub.mkdir(parents=True)
        for index in range(start, min(start + 500, count)):
            (sub / f"f{index}.txt").write_bytes(b"x" * 64)


def _container_events(docker_engine, root: Path, since: float, execution: str | None = None) -> list[str]:  # type: ignore[no-untyped-def]
    """The engine's container events (create, start, ...) for this storage root (and one execution) since
    ``since`` (to the second: an execution just before it may show up unless ``execution`` is given)."""
    labels = [f"{LABEL_STORAGE_ROOT}={root}"] + ([f"{LABEL_EXECUTION}={execution}"] if execution else [])
    events = docker_engine.events(
        since=int(since) - 1,
        until=int(time.time()) + 1,
        filters={"type": "container", "label": labels},
        decode=True,
    )
    return [event.get("Action", event.get("status", "")) for event in events]


# -- 1. NaN parameters and unreadable rows --------------------------------------------------------------


def test_nan_is_refused_and_an_unreadable_row_is_skipped_explained_and_deletable(
    docker_service: GearService, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = docker_service.settings.storage_root
    for value in (".nan", ".inf", "-.inf"):
        project = _project(tmp_path / f"p{value}", f"command: 'true'\nparameters: {{lr: {value}}}\n")
        ran = _cli(root, "run", str(project), "--gear", "nan")
        assert ran.returncode != 0
        assert "parameters must be finite" in ran.stdout + ran.stderr, ran.stderr
    assert docker_service.store.list_gears() == [] and docker_service.executions() == []
    assert managed_names(root) == set()

    for number in (1, 2, 3):
        docker_service.run(_spec("nan", command=f"echo {number} > out.txt"), on_line=lambda _: None)
    docker_service.access().set_visibility("nan", Visibility.PUBLIC)

    # A row made unreadable on purpose (what a NaN once produced: a document that does not validate).
    engine = sa.create_engine(docker_service.settings.resolved_store_url)
    with engine.begin() as connection:
        connection.execute(
            executions_table.update()
            .where(executions_table.c.id == "nan/2")
            .values(document='{"id": "nan/2", "parameters": {"lr": NaN}, garbage')
        )
    engine.dispose()

    with caplog.at_level(logging.WARNING):
        assert [r.id for r in docker_service.executions()] == ["nan/1", "nan/3"]
    assert any("nan/2" in m and "unreadable" in m for m in caplog.messages), caplog.messages

    for user in ("alice", "bob"):  # the owner and anybody else: every listing still works
        listed = _cli(root, "executions", "--json", user=user)
        assert listed.returncode == 0, listed.stderr
        assert [r["id"] for r in json.loads(listed.stdout)] == ["nan/1", "nan/3"]
        assert "Skipped an unreadable execution record (nan/2)" in listed.stderr
        gears = _cli(root, "gears", user=user)
        assert gears.returncode == 0 and "nan" in gears.stdout, gears.stderr
        shown = _cli(root, "show", "nan/1", user=user)
        assert shown.returncode == 0 and "succeeded" in shown.stdout, shown.stderr
        broken = _cli(root, "show", "nan/2", user=user)
        assert broken.returncode != 0
        assert "The stored record of execution nan/2 cannot be read" in broken.stderr
        assert "Delete it with `hyperai delete nan/2 --yes`" in broken.stderr

    refused = _cli(root, "delete", "nan/2", "--yes", user="bob")  # only the gear's owner deletes
    assert refused.returncode != 0 and "only its owner" in refused.stderr, refused.stderr
    workdir = docker_service.storage.execution_dir("nan", 2)
    assert workdir.is_dir()
    deleted = _cli(root, "delete", "nan/2", "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert "deleted nan/2" in deleted.stdout
    assert not workdir.exists()
    listed = _cli(root, "executions", "--json", user="bob")
    assert listed.returncode == 0 and "unreadable" not in listed.stderr
    assert [r["id"] for r in json.loads(listed.stdout)] == ["nan/1", "nan/3"]
    assert _cli(root, "delete", "nan/3", "--yes").returncode == 0  # readable ones: as before
    assert [r.id for r in docker_service.executions()] == ["nan/1"]


# -- 2. A worker killed, terminated or stopped before the container starts -------------------------------

WORKER = """
import sys, time
from pathlib import Path
from hyperai_provider.core.gears import GearService
from hyperai_provider.core.settings import HyperAISettings
from hyperai_provider.models.spec import build_spec

root, step, gear, code, parent = sys.argv[1:6]
service = GearService(HyperAISettings(storage_root=Path(root), user="alice", overlay="off"))
fields = {"gear": gear, "image": "python", "compute_type": "cpu", "command": "echo started > started.txt; sleep 60"}
if code:
    fields["code"] = code
if parent:
    fields["continue_from"] = parent
spec = build_spec(**fields)
if step == "created":  # a worker that dies right after writing the record
    service.create(service.plan(spec))
    time.sleep(120)
try:
    service.run(spec, on_line=lambda _: None)
except Exception as error:
    print(type(error).__name__, error, flush=True)
    sys.exit(3)
"""


def _worker(tmp_path: Path, root: Path, step: str, gear: str, code: Path | None = None, parent: str = ""):  # type: ignore[no-untyped-def]
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    return subprocess.Popen(
        [sys.executable, str(script), str(root), step, gear, str(code or ""), parent],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )


@pytest.mark.parametrize("step", ["created", "preparing", "synchronizing"])
def test_a_worker_killed_before_the_container_starts_leaves_a_record_gc_closes(
    docker_service: GearService, docker_engine, tmp_path: Path, step: str
) -> None:
    root = docker_service.settings.storage_root
    code, parent, gear = None, "", f"kill-{step}"
    if step == "preparing":
        code = tmp_path / "code"
        _many_files(code, 20_000)
    if step == "synchronizing":  # the copy fallback (overlay off) of a parent with many files
        write = "import os\nfor i in range(30000): open(f'f{i}', 'w').write('x')\n"
        docker_service.run(_spec(gear, command=["python3", "-c", write]), on_line=lambda _: None)
        parent = f"{gear}/1"
    began = time.time()
    worker = _worker(tmp_path, root, step, gear, code, parent)
    try:
        target = f"{gear}/2" if parent else f"{gear}/1"
        record = wait_for_state(
            docker_service, target, ExecutionState(step), alive=lambda: worker.poll() is None
        )
        assert record.runner is not None and record.runner.pid == worker.pid  # recorded at creation
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        worker.kill()
    assert docker_service.get(target).state is ExecutionState(step)  # left open by the dead worker

    stopped = _cli(root, "stop", target)  # used to fail or hang on such a record
    assert stopped.returncode == 0, stopped.stderr
    if step == "created":
        assert docker_service.lifecycle.collect_orphans() == [target]
    else:
        collected = _cli(root, "gc", "--json")
        assert collected.returncode == 0, collected.stderr
        assert json.loads(collected.stdout) == {"collected": [target]}
    closed = docker_service.get(target)
    assert closed.state is ExecutionState.TERMINATED and closed.saved_completely is False
    assert "its worker died" in (closed.failure_reason or "")
    assert docker_service.lifecycle.collect_orphans() == []  # nothing left to collect
    assert managed_names(root) == set()
    assert "start" not in _container_events(docker_engine, root, began, target)
    again = _cli(root, "stop", target)
    assert again.returncode == 0 and "already terminated" in again.stdout
    deleted = _cli(root, "delete", target, "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert not docker_service.storage.execution_dir(gear, closed.number).exists()


def test_sigterm_during_preparing_closes_the_record_and_never_starts_the_container(
    docker_service: GearService, docker_engine, tmp_path: Path
) -> None:
    root = docker_service.settings.storage_root
    project = _project(tmp_path / "slow", "command: echo started > started.txt; sleep 60\n", files=20_000)
    began = time.time()
    cli = subprocess.Popen(
        [sys.executable, "-m", "hyperai_provider.cli", "--storage-root", str(root), "run", str(project)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "HYPERAI_USER": "alice"},
    )
    try:
        wait_for_state(docker_service, "slow/1", ExecutionState.PREPARING, alive=lambda: cli.poll() is None)
        sent = time.monotonic()
        cli.send_signal(signal.SIGTERM)
        output, _ = cli.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
        cli.kill()
    print(f"\nthe CLI exited {took:.2f} s after SIGTERM during preparing")
    assert cli.returncode != 0, output
    record = docker_service.get("slow/1")
    assert record.state is ExecutionState.TERMINATED, record.failure_reason
    assert record.exit_code is None and not record.started_at
    assert "create" not in _container_events(docker_engine, root, began)  # never even created
    assert managed_names(root) == set()
    assert not (docker_service.workdir(record) / "started.txt").exists()
    assert docker_service.lifecycle.collect_orphans() == []


def test_stop_from_another_process_during_preparing_is_honoured_before_the_start(
    docker_service: GearService, docker_engine, tmp_path: Path
) -> None:
    root = docker_service.settings.storage_root
    code = tmp_path / "code"
    _many_files(code, 20_000)
    began = time.time()
    worker = _worker(tmp_path, root, "run", "halt", code)
    try:
        wait_for_state(
            docker_service, "halt/1", ExecutionState.PREPARING, alive=lambda: worker.poll() is None
        )
        asked = time.monotonic()
        docker_service.stop("halt/1", "stopped by the test")  # this process is not the one running it
        output, _ = worker.communicate(timeout=60)
        took = time.monotonic() - asked
    finally:
        worker.kill()
    print(f"\nthe worker closed the record {took:.2f} s after the stop (its preparation step ended)")
    assert worker.returncode == 3 and "ExecutionTerminatedError" in output, output
    record = docker_service.get("halt/1")
    assert record.state is ExecutionState.TERMINATED
    assert record.failure_reason == "terminated: stopped by the test"
    assert "create" not in _container_events(docker_engine, root, began)
    assert managed_names(root) == set()
    assert not (docker_service.workdir(record) / "started.txt").exists()


# -- 3. A full storage root ------------------------------------------------------------------------------


@pytest.fixture
def small_root(tmp_path: Path, docker_engine) -> Iterator[Path]:  # type: ignore[no-untyped-def]
    """A 20 MiB tmpfs as the storage root (unmounted after the test, its containers removed first)."""
    if os.geteuid() != 0:
        _need("mounting a small tmpfs as the storage root needs root")
    root = tmp_path / "small"
    root.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(root)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        _need(f"cannot mount a tmpfs ({mounted.stderr.strip()})")
    try:
        yield root
    finally:
        runner = DockerRunner()
        for container in runner.managed_containers(str(root)):
            runner.remove(container.name)
        if subprocess.run(["umount", str(root)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(root)], capture_output=True)


def _free(root: Path) -> int:
    stat = os.statvfs(root)
    return stat.f_bavail * stat.f_frsize


def test_an_upload_bigger_than_the_disk_fails_clearly_and_leaves_nothing(
    small_root: Path, tmp_path: Path
) -> None:
    source = tmp_path / "big"
    source.mkdir()
    for index in range(3):
        (source / f"part{index}").write_bytes(os.urandom(10 * 2**20))
    assert _cli(small_root, "dataset", "create", "big").returncode == 0
    free = _free(small_root)
    added = _cli(small_root, "dataset", "version", "add", "big", str(source))
    assert added.returncode != 0
    assert f"error: {FULL_DISK}: writing version 1 of dataset 'big' failed" in added.stderr, added.stderr
    assert "nothing partial was kept" in added.stderr and "Traceback" not in added.stderr
    assert [p.name for p in (small_root / "tmp").iterdir() if p.name.startswith("dataset-")] == []
    assert list((small_root / "datasets").iterdir()) == []
    assert _free(small_root) >= free - 64 * 1024  # the space came back
    shown = _cli(small_root, "dataset", "show", "big", "--json")
    assert shown.returncode == 0 and "part0" not in shown.stdout
    small = tmp_path / "small-src"
    small.mkdir()
    (small / "a.txt").write_text("fits\n")
    assert _cli(small_root, "dataset", "version", "add", "big", str(small)).returncode == 0  # still usable


@pytest.mark.parametrize("when", ["at-start", "while-running"])
def test_an_execution_that_fills_the_disk_is_closed_and_the_store_stays_usable(
    small_root: Path, tmp_path: Path, docker_engine, base_image: str, when: str
) -> None:
    fill = "dd if=/dev/zero of=big bs=1M"  # ends 1: 'No space left on device'
    if when == "while-running":
        fill = "echo begun; sleep 2; " + fill
    service = GearService(HyperAISettings(storage_root=small_root, user="alice"))
    try:
        began = time.monotonic()
        with pytest.raises((StorageError, ExecutionFailedError)) as failed:
            service.run(_spec("fill", command=fill), on_line=lambda _: None)
        took = time.monotonic() - began
        print(f"\n[{when}] {type(failed.value).__name__} {took:.2f} s after it began: {failed.value.headline}")
        if isinstance(failed.value, StorageError):  # the store or output.log found the disk full
            assert str(failed.value).startswith(FULL_DISK), failed.value
        else:  # the program itself failed on the full disk first
            assert "the command exited with code 1" in str(failed.value), failed.value
        record = service.get("fill/1")
        assert record.state is ExecutionState.FAILED, record
        assert managed_names(small_root) == set()
        listed = _cli(small_root, "executions", "--json")  # another process reads the store
        assert listed.returncode == 0, listed.stderr
        assert [(r["id"], r["state"]) for r in json.loads(listed.stdout)] == [("fill/1", "failed")]

        deleted = _cli(small_root, "delete", "fill/1", "--yes")
        assert deleted.returncode == 0, deleted.stderr
        assert _free(small_root) > 15 * 2**20
        small = service.run(_spec("fill", command="echo small > s.txt"), on_line=lambda _: None)
        assert small.state is ExecutionState.SUCCEEDED
        assert (service.workdir(small) / "s.txt").read_text() == "small\n"
    finally:
        service.backend.close()

    # Once more through `hyperai run` (a new process: the store opens again on the emptied disk).
    project = _project(tmp_path / "filler", f"command: {json.dumps(fill)}\n")
    ran = _cli(small_root, "run", str(project), "--gear", "fill")
    assert ran.returncode != 0
    assert "error:" in ran.stdout + ran.stderr and "Traceback" not in ran.stderr, ran.stderr
    again = json.loads(_cli(small_root, "show", "fill/3", "--json").stdout)
    assert again["state"] == "failed", again
    assert managed_names(small_root) == set()


# -- 4. The Docker engine going away mid-run --------------------------------------------------------------


def test_the_engine_stopping_mid_run_fails_the_task_clearly_and_closes_the_record(
    second_engine: SecondEngine, storage_root: Path
) -> None:
    second_engine.load(BASE_IMAGE)
    service = GearService(
        HyperAISettings(storage_root=storage_root, user="alice", docker_host=second_engine.host)
    )
    raised: list[BaseException] = []

    def run() -> None:
        try:
            service.run(
                _spec("engine", command="echo started > started.txt; sleep 30"), on_line=lambda _: None
            )
        except BaseException as error:
            raised.append(error)

    worker = threading.Thread(target=run)
    worker.start()
    try:
        wait_for_state(service, "engine/1", ExecutionState.RUNNING, alive=worker.is_alive)
        time.sleep(1)  # let the command write its first file
        stopped_at = time.monotonic()
        second_engine.stop()
        engine_gone = time.monotonic() - stopped_at
        worker.join(timeout=60)
        failed_after = time.monotonic() - stopped_at
    finally:
        if second_engine.running:
            service.stop("engine/1")
        worker.join(timeout=60)
    print(
        f"\ndockerd exited {engine_gone:.2f} s after SIGTERM; the task failed {failed_after:.2f} s after it"
    )

    (error,) = raised
    assert isinstance(error, EngineError), repr(error)
    message = str(error)
    assert message.startswith(f"The Docker engine at {second_engine.host} went away while the execution ran")
    for raw in ("Traceback", "urllib3", "Connection aborted", "HTTPConnection", "Errno"):
        assert raw not in message
    record = service.get("engine/1")
    assert record.state is ExecutionState.FAILED and record.saved_completely is False
    assert (record.failure_reason or "").startswith(f"The Docker engine at {second_engine.host} went away")
    assert (service.workdir(record) / "started.txt").read_text() == "started\n"  # the working dir is kept

    second_engine.start()  # the engine comes back: its stopped container is still there
    client = second_engine.client()
    assert [c.name for c in client.containers.list(all=True)] == [record.container_name]
    collected = run_cli("--docker-host", second_engine.host, "gc", "--json", storage_root=storage_root)
    assert collected.returncode == 0, collected.stderr
    assert json.loads(collected.stdout) == {"collected": []}  # closed already: not blamed on a dead worker
    assert client.containers.list(all=True) == [] and client.volumes.list() == []
    assert service.get("engine/1").failure_reason == record.failure_reason

    after = service.run(_spec("engine", command="echo again > again.txt"), on_line=lambda _: None)
    assert after.state is ExecutionState.SUCCEEDED  # the same service goes on once the engine is back
    assert client.containers.list(all=True) == []
    service.backend.close()
