"""Stop time after SIGTERM to an Airflow task running a Gear, against a plain `docker stop` in the same run.

Each round starts `airflow dags test` (SQLite, a throw-away AIRFLOW_HOME) on a one-task DAG whose command
writes a file and sleeps, waits for the execution to run, sends SIGTERM to the Airflow process and times
until no container of the storage root is left (target: within 5 s, Airflow's escalation to SIGKILL).
Baseline: `docker stop` with the same grace + remove of an equivalent container started directly.

    python benchmarks/termination.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hyperai_provider.core.gears import GearService
from hyperai_provider.core.settings import HyperAISettings
from hyperai_provider.models import ExecutionState

DAG = """
import pendulum
from airflow.sdk import dag
from hyperai_provider.operators import GearTaskOperator

@dag(dag_id="bench_sigterm", schedule=None, start_date=pendulum.datetime(2026, 1, 1))
def bench():
    GearTaskOperator(task_id="nap", command="echo kept > before.txt; sleep 300", retries=0)

bench()
"""


def containers(service: GearService) -> list[str]:
    labels = ["io.hyperai.managed=true", f"io.hyperai.storage-root={service.settings.storage_root}"]
    # the low-level listing: no per-container inspect, so no race with a container being removed
    return [c["Id"] for c in service.runner.client.api.containers(all=True, filters={"label": labels})]


def airflow_round(home: Path, dags: Path, root: Path, number: int) -> tuple[float, str, bool | None]:
    service = GearService(HyperAISettings(storage_root=root))
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "HYPERAI_STORAGE_ROOT": str(root),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow", "dags", "test", "bench_sigterm"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    id_ = f"bench_sigterm/{number}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert time.monotonic() < deadline, f"{id_} never ran"
            try:
                record = service.store.get_execution(id_)
                if (
                    record.state is ExecutionState.RUNNING
                    and (service.workdir(record) / "before.txt").exists()
                ):
                    break
            except Exception:
                pass
            time.sleep(0.1)
        killed = time.monotonic()
        process.send_signal(signal.SIGTERM)
        while containers(service) and time.monotonic() - killed < 30:
            time.sleep(0.02)
        gone = time.monotonic() - killed
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    record = service.store.get_execution(id_)
    service.store.dispose()
    return gone, record.state.value, record.saved_completely


def baseline(service: GearService) -> float:
    client = service.runner.client
    container = client.containers.run(
        "hyperai/base:bookworm-1", ["sh", "-c", "sleep 300"], init=True, detach=True, name=None
    )
    time.sleep(0.5)
    started = time.monotonic()
    container.stop(timeout=round(service.settings.stop_grace_seconds))
    container.remove()
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hyperai-bench-term-") as folder:
        work = Path(folder)
        home, dags, root = work / "airflow", work / "dags", work / "storage"
        for path in (home, dags, root):
            path.mkdir()
        (dags / "bench_sigterm.py").write_text(DAG)
        env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
        subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True, env=env
        )
        service = GearService(HyperAISettings(storage_root=root))
        stops, plain = [], []
        for number in range(1, args.rounds + 1):
            plain.append(baseline(service))
            gone, state, complete = airflow_round(home, dags, root, number)
            stops.append(gone)
            print(
                f"round {number}: container gone {gone:.2f} s after SIGTERM; record {state}, saved_completely={complete}"
            )
        median, base = statistics.median(stops), statistics.median(plain)
        print(f"median stop time after SIGTERM: {median:.2f} s (max {max(stops):.2f} s; target < 5 s)")
        print(f"baseline docker stop + remove: {base:.2f} s; ratio {median / base:.2f}x")


if __name__ == "__main__":
    main()
