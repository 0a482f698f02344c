"""Task duration of GearTaskOperator vs the Docker provider's DockerOperator vs a raw `docker run`.

All three run the same trivial command (`true`) in the same image, interleaved, in one run, so the
ratios hold on a noisy shared machine. The Airflow tasks run through ``airflow dags test`` on SQLite; their
durations are Airflow's own (task instance start to end).

    python benchmarks/task_overhead.py [--rounds 15]

Target (issue #2): GearTaskOperator within 1.15x of DockerOperator.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

IMAGE = "hyperai/base:bookworm-1"


DAG_TEMPLATE = """
import pendulum
from airflow.providers.docker.operators.docker import DockerOperator
from airflow.sdk import DAG, chain

from hyperai_provider.operators import GearTaskOperator

with DAG("hyperai_bench_overhead", schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
    tasks = []
    for index in range({rounds}):
        tasks.append(GearTaskOperator(task_id=f"gear_{{index}}", image="{image}", command="true"))
        tasks.append(
            DockerOperator(
                task_id=f"docker_{{index}}", image="{image}", command="true",
                auto_remove="success", mount_tmp_dir=False,
            )
        )
    chain(*tasks)
"""


def _airflow_runs(rounds: int) -> dict[str, list[float]]:
    """Run one DAG of interleaved tasks with `airflow dags test`; read durations from its database."""
    home = Path(tempfile.mkdtemp(prefix="hyperai-bench-"))
    (home / "dags").mkdir()
    (home / "dags" / "bench.py").write_text(DAG_TEMPLATE.format(rounds=rounds, image=IMAGE))
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "HYPERAI_STORAGE_ROOT": str(home / "hyperai"),
    }
    airflow = [sys.executable, "-m", "airflow"]
    subprocess.run([*airflow, "db", "migrate"], check=True, capture_output=True, env=env)
    test = subprocess.run([*airflow, "dags", "test", "hyperai_bench_overhead"], capture_output=True, env=env)
    if test.returncode != 0:
        raise SystemExit(test.stdout.decode()[-3000:] + test.stderr.decode()[-3000:])
    with sqlite3.connect(home / "airflow.db") as db:
        rows = db.execute(
            "SELECT task_id, state, start_date, end_date FROM task_instance WHERE dag_id = 'hyperai_bench_overhead'"
        ).fetchall()
    durations: dict[str, list[float]] = {"GearTaskOperator": [], "DockerOperator": []}
    for task_id, state, start, end in sorted(rows, key=lambda row: row[2]):
        if state != "success":
            raise SystemExit(f"task {task_id} ended {state}")
        kind = "GearTaskOperator" if task_id.startswith("gear_") else "DockerOperator"
        durations[kind].append((_parse(end) - _parse(start)).total_seconds())
    return durations


def _raw_docker_runs(rounds: int) -> list[float]:
    durations = []
    for _ in range(rounds):
        started = time.perf_counter()
        subprocess.run(["docker", "run", "--rm", IMAGE, "true"], check=True, capture_output=True)
        durations.append(time.perf_counter() - started)
    return durations


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace(" ", "T"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    raw = _raw_docker_runs(args.rounds)
    results = _airflow_runs(args.rounds)
    results["raw docker run"] = raw
    warm = {name: sorted(values[1:] or values) for name, values in results.items()}  # first run warms caches
    baseline = statistics.median(warm["DockerOperator"])
    print(f"{'what':<18} {'median s':>9} {'p90 s':>7} {'x DockerOperator':>17}")
    for name, ordered in warm.items():
        median = statistics.median(ordered)
        p90 = ordered[int(0.9 * (len(ordered) - 1))]
        print(f"{name:<18} {median:>9.3f} {p90:>7.3f} {median / baseline:>17.2f}")
    ratio = statistics.median(warm["GearTaskOperator"]) / baseline
    print(f"GearTaskOperator / DockerOperator = {ratio:.2f} (target <= 1.15)")


if __name__ == "__main__":
    main()
