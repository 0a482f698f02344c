"""Termination, orphans, deletion and quotas on the real engine (and a real Airflow for SIGTERM)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hyperai_provider.core.gears import GearService
from hyperai_provider.exceptions import ConflictError, ExecutionFailedError
from hyperai_provider.models import ExecutionState
from hyperai_provider.models.spec import build_spec
from tests.conftest import managed_names, run_cli, wait_for_state

pytestmark = pytest.mark.docker


def _containers(storage_root: Path) -> list[str]:
    return sorted(managed_names(storage_root))


def test_sigterm_to_an_airflow_task_stops_the_container_and_records_termination(
    airflow_home: Path,
    storage_root: Path,
    service: GearService,
    tmp_path: Path,
    docker_engine,
    base_image: str,
) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "nap.py").write_text(
        "import pendulum\nfrom airflow.sdk import dag\nfrom hyperai_provider.operators import GearTaskOperator\n\n"
        "@dag(dag_id='hyperai_nap', schedule=None, start_date=pendulum.datetime(2026, 1, 1))\n"
        "def nap():\n"
        "    GearTaskOperator(task_id='nap', command='echo kept > before.txt; sleep 120', retries=0)\n\nnap()\n"
    )
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "HYPERAI_STORAGE_ROOT": str(storage_root),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow", "dags", "test", "hyperai_nap"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_state(service, "hyperai_nap/1", ExecutionState.RUNNING, alive=lambda: process.poll() is None)
        time.sleep(0.5)  # let the command write its first file
        killed_at = time.monotonic()
        process.send_signal(signal.SIGTERM)
        while _containers(storage_root) and time.monotonic() - killed_at < 10:
            time.sleep(0.05)
        gone_after = time.monotonic() - killed_at
        process.wait(timeout=60)
    finally:
        process.kill()
    print(f"container gone {gone_after:.2f} s after SIGTERM")
    assert gone_after < 5
    shown = run_cli("show", "hyperai_nap/1", "--json", storage_root=storage_root)
    import json

    record = json.loads(shown.stdout)
    assert record["state"] == "terminated"
    assert record["saved_completely"] is True and "killed by Airflow" in record["failure_reason"], record
    assert (Path(record["workdir"]) / "before.txt").read_text() == "kept\n"


def test_sigkill_leaves_an_orphan_that_gc_stops_and_marks(
    storage_root: Path, service: GearService, tmp_path: Path, docker_engine, base_image: str
) -> None:
    project = tmp_path / "orphan"
    project.mkdir()
    (project / "openbayes.yaml").write_text(
        "resource: cpu\nenv: python\ncommand: echo kept > before.txt; sleep 120\n"
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hyperai_provider.cli",
            "--storage-root",
            str(storage_root),
            "run",
            str(project),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_state(service, "orphan/1", ExecutionState.RUNNING, alive=lambda: process.poll() is None)
    time.sleep(0.5)  # let the command write its first file
    process.kill()
    process.wait(timeout=30)
    (left_behind,) = _containers(storage_root)  # by the dead worker
    assert left_behind.startswith("hyperai-orphan-1-")

    collected = run_cli("gc", "--json", storage_root=storage_root)
    assert collected.returncode == 0, collected.stderr
    assert '"orphan/1"' in collected.stdout
    assert _containers(storage_root) == []
    import json

    record = json.loads(run_cli("show", "orphan/1", "--json", storage_root=storage_root).stdout)
    assert record["state"] == "terminated" and record["saved_completely"] is False
    assert (Path(record["workdir"]) / "before.txt").read_text() == "kept\n"


def _task(**fields: object):  # type: ignore[no-untyped-def]
    return build_spec(**{"gear": "life", "image": "python", "compute_type": "cpu", **fields})


def test_a_running_execution_cannot_be_deleted(docker_service: GearService) -> None:
    import threading

    def run() -> None:
        with pytest.raises(ExecutionFailedError):
            docker_service.run(_task(command="sleep 30"), on_line=lambda _: None)

    worker = threading.Thread(target=run)
    worker.start()
    wait_for_state(docker_service, "life/1", ExecutionState.RUNNING, alive=worker.is_alive)
    time.sleep(0.5)  # let the command start
    try:
        with pytest.raises(ConflictError, match="running execution cannot be deleted.*hyperai stop"):
            docker_service.lifecycle.delete_execution("life/1")
        with pytest.raises(ConflictError, match="has running execution"):
            docker_service.lifecycle.delete_gear("life")
    finally:
        docker_service.stop("life/1")
        worker.join(timeout=30)


def test_deletion_guards_continuations_and_keeps_dataset_versions(docker_service: GearService) -> None:
    parent = docker_service.run(_task(command="seq 100000 > numbers.txt"), on_line=lambda _: None)
    child = docker_service.run(
        _task(command="echo more >> numbers.txt", continue_from=parent.id), on_line=lambda _: None
    )
    docker_service.datasets.create("kept")
    docker_service.datasets.add_version_from_execution("kept", parent.id)
    with pytest.raises(ConflictError, match="life/2.*--flatten.*--cascade"):
        docker_service.lifecycle.delete_execution(parent.id)
    result = docker_service.lifecycle.delete_execution(parent.id, flatten=True)
    assert result.flattened == [child.id] and result.deleted == [parent.id]
    assert result.bytes_released > 0
    merged = docker_service.workdir(docker_service.get(child.id)) / "numbers.txt"
    assert merged.read_text().endswith("100000\nmore\n")  # the child still has its whole working dir
    version_file = docker_service.storage.dataset_version_dir("kept", 1) / "numbers.txt"
    assert version_file.read_text().endswith("100000\n")  # hard links survive the deletion
    cascade = docker_service.lifecycle.delete_gear("life")
    assert cascade.deleted == [child.id]
    assert not docker_service.storage.gear_dir("life").exists()


def test_cli_delete_asks_for_confirmation_and_reports_storage(
    storage_root: Path, docker_engine, base_image: str
) -> None:
    from hyperai_provider.core.settings import HyperAISettings

    service = GearService(HyperAISettings(storage_root=storage_root))
    service.run(_task(command="head -c 100000 /dev/zero > blob"), on_line=lambda _: None)
    refused = run_cli("delete", "life/1", storage_root=storage_root)
    assert refused.returncode != 0 and "--yes" in refused.stderr
    deleted = run_cli("delete", "life/1", "--yes", storage_root=storage_root)
    assert deleted.returncode == 0, deleted.stderr
    assert "deleted life/1; released 100." in deleted.stdout
    missing = run_cli("show", "life/1", storage_root=storage_root)
    assert missing.returncode == 3


def test_disk_quota_stops_the_execution_and_keeps_its_data(docker_service: GearService) -> None:
    (docker_service.settings.storage_root / "compute_types.yaml").write_text(
        "tiny-disk:\n  cpus: 1\n  memory: 256MiB\n  disk_quota: 1MiB\n"
    )
    started = time.monotonic()
    with pytest.raises(ExecutionFailedError, match="disk quota exceeded"):
        docker_service.run(
            _task(compute_type="tiny-disk", command="head -c 3000000 /dev/zero > big; sleep 60"),
            on_line=lambda _: None,
        )
    assert time.monotonic() - started < 20
    record = docker_service.get("life/1")
    assert record.state is ExecutionState.FAILED and "disk quota exceeded" in (record.failure_reason or "")
    assert (docker_service.workdir(record) / "big").stat().st_size == 3_000_000


def test_storage_root_quota_refuses_new_executions(
    storage_root: Path, docker_engine, base_image: str
) -> None:
    from hyperai_provider.core.settings import HyperAISettings
    from hyperai_provider.exceptions import QuotaExceededError

    service = GearService(HyperAISettings(storage_root=storage_root, storage_quota=1000))
    service.run(_task(command="head -c 5000 /dev/zero > blob"), on_line=lambda _: None)
    with pytest.raises(QuotaExceededError, match="HYPERAI_STORAGE_QUOTA"):
        service.run(_task(command="true"))
    assert [r.id for r in service.executions()] == ["life/1"]
