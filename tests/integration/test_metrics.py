"""Metrics on the real engine: ``openbayestool`` unchanged in the PyTorch image, metric lines from ``echo``
in the base image, a workspace's metrics, the operator's XCom, ``hyperai metrics``; and hostile
containers (another execution's token, forged, symlinked, special and oversized files, NaN, 10 MB lines)
that cannot break or poison other executions.

All traffic stays on a container's own loopback (its receiver at 127.0.0.1); nothing is sent elsewhere.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import textwrap
import threading
import time
from pathlib import Path

import pytest

from hyperai_provider.core.gears import GearService
from hyperai_provider.core.quota import METRICS_FOLDER as FOLDER
from hyperai_provider.core.quota import metrics_folder as folder_path
from hyperai_provider.exceptions import ExecutionFailedError, ExecutionTerminatedError
from hyperai_provider.models import ExecutionRecord, ExecutionState
from hyperai_provider.models.spec import build_spec
from tests.conftest import managed_names, run_cli, wait_for_state

pytestmark = pytest.mark.docker
ALICE = {"HYPERAI_USER": "alice"}  # the service fixture's user

CLIENT = '''
import json, os, sys, urllib.error, urllib.request

URL, TOKEN = os.environ["JOB_UPDATE_URL"], os.environ["JOB_ACCESS_TOKEN"]


def put(body, url=URL, token=TOKEN, method="PUT"):
    """openbayestool's request, by hand (the base image has no requests): the status, or the error."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method,
        headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError as error:
        return type(error).__name__


def metric(key, value):
    return {"metrics": {key: [{"value": value, "created_at": "2026-01-01T00:00:00"}]}}
'''


def code(tmp_path: Path, script: str, name: str = "main.py") -> Path:
    folder = tmp_path / f"code-{time.monotonic_ns()}"
    folder.mkdir()
    (folder / "client.py").write_text(CLIENT)
    (folder / name).write_text(textwrap.dedent(script))
    return folder


def run(service: GearService, lines: list[str] | None = None, **fields: object) -> ExecutionRecord:
    spec = build_spec(
        **{"gear": "metrics", "image": "hyperai/base:bookworm-1", "compute_type": "cpu", **fields}
    )
    return service.run(spec, on_line=(lines.append if lines is not None else lambda _line: None))


def stored(service: GearService, record: ExecutionRecord) -> list[tuple[str, int | None, float]]:
    return [(p.key, p.step, p.value) for p in service.store.metrics.points(record.id)]


def test_openbayestool_in_the_pytorch_image_is_stored_in_order(
    service: GearService, pytorch_image: str, tmp_path: Path
) -> None:
    script = """
        import openbayestool
        for step in range(1, 21):
            openbayestool.log_metric("acc", step / 20)
            openbayestool.log_metric("loss", 1 / step)
        openbayestool.log_param("lr", 0.01)
        openbayestool.log_param("optimizer", "adam")
        openbayestool.log_metric("warmup", 1)
        openbayestool.clear_metric("warmup")
        openbayestool.log_metric("warmup", 2)
        openbayestool.clear_param("optimizer")
    """
    lines: list[str] = []
    record = run(service, lines, image="pytorch-2.14", command="python3 main.py", code=code(tmp_path, script))
    points = stored(service, record)
    assert [p for p in points if p[0] == "acc"] == [("acc", step, step / 20) for step in range(1, 21)]
    assert [p for p in points if p[0] == "loss"] == [("loss", step, 1 / step) for step in range(1, 21)]
    assert [p for p in points if p[0] == "warmup"] == [("warmup", 1, 2.0)]  # cleared, then again from step 1
    assert service.store.metrics.params(record.id) == {"lr": 0.01}
    times = [p.at for p in service.store.metrics.points(record.id)]
    assert times == sorted(times) and record.created_at.timestamp() - 1 < times[0] < time.time()
    assert "[hyperai] metric acc=0.05 (step 1)" in lines  # then at most 20 lines per 10 s, and a count:
    assert any(
        line.startswith("[hyperai] metrics: 26 more line(s) not shown (all stored)") for line in lines
    ), lines
    assert not any("WARNING" in line for line in lines)  # openbayestool printed no failure
    assert not folder_path(service.storage, record).exists()  # its records are in the store

    shown = run_cli("metrics", record.id, storage_root=service.settings.storage_root, env=ALICE)
    assert shown.returncode == 0, shown.stderr
    table = {line.split()[0]: line.split()[1:4] for line in shown.stdout.splitlines()[1:] if line.strip()}
    assert table["acc"] == ["1", "20", "20"] and table["loss"] == ["0.05", "20", "20"]
    assert "lr" in table and table["lr"] == ["0.01"]
    as_json = json.loads(
        run_cli("metrics", record.id, "--json", storage_root=service.settings.storage_root, env=ALICE).stdout
    )
    assert [point["value"] for point in as_json["metrics"]["acc"]] == [step / 20 for step in range(1, 21)]
    assert as_json["parameters"] == {"lr": 0.01}


def test_metric_lines_from_echo_in_the_base_image(service: GearService, base_image: str) -> None:
    command = (
        """echo '{"metric": "loss", "value": 0.5, "step": 10}'; echo '  {"metric": "loss", "value": 0.25}  '; """
        """echo '{"metric": "loss", "value": NaN}'; echo '{"metric": "loss", "value": "0.1"}'; """
        """echo '{"metric": "<img src=x onerror=alert(1)>", "value": 1}'; echo '{"event": "not a metric"}'; """
        """seq 1 1000 | sed 's/.*/{"metric": "n", "value": &}/'"""
    )
    lines: list[str] = []
    record = run(service, lines, command=command)
    points = stored(service, record)
    assert points[:3] == [("loss", 10, 0.5), ("loss", 11, 0.25), ("<img src=x onerror=alert(1)>", 1, 1.0)]
    assert [p[1:] for p in points[3:]] == [(n, float(n)) for n in range(1, 1001)]
    refusals = [line for line in lines if line.startswith("[hyperai] metric refused")]
    assert any("the value is NaN" in line for line in refusals) and any(
        "is not a number" in line for line in refusals
    )
    shown = [line for line in lines if line.startswith("[hyperai] metric")]
    assert len(shown) <= 25 and any("more line(s) not shown (all stored)" in line for line in lines)
    log = service.storage.log_path(record.gear, record.number).read_text()
    assert '{"metric": "loss", "value": 0.5, "step": 10}' in log  # the program's output is kept as printed


@pytest.mark.airflow
def test_the_gear_task_pushes_the_last_values_to_xcom(
    tmp_path: Path, airflow_home: Path, storage_root: Path, base_image: str
) -> None:
    from tests.system.dagtest import airflow_dags_test

    dags = tmp_path / "dags"
    dags.mkdir()
    command = """echo '{"metric": "acc", "value": 0.5}'; echo '{"metric": "acc", "value": 0.75}'"""
    (dags / "m.py").write_text(
        "import pendulum\nfrom airflow.sdk import DAG\nfrom hyperai_provider.operators import GearTaskOperator\n"
        "with DAG('hyperai_metrics_xcom', schedule=None, start_date=pendulum.datetime(2026, 1, 1)):\n"
        f"    GearTaskOperator(task_id='train', image='{base_image}', command={command!r})\n"
    )
    result = airflow_dags_test("hyperai_metrics_xcom", airflow_home, dags, storage_root)
    assert result.task_states("hyperai_metrics_xcom") == {"train": "success"}, result.output[-3000:]
    with sqlite3.connect(result.airflow_home / "airflow.db") as db:
        (value,) = db.execute(
            "SELECT value FROM xcom WHERE dag_id = 'hyperai_metrics_xcom' AND task_id = 'train' AND key = 'metrics'"
        ).fetchone()
    assert json.loads(value) == {"acc": 0.75}
    assert result.xcom("hyperai_metrics_xcom", "train")["execution_id"] == "hyperai_metrics_xcom/1"


def test_a_hostile_container_cannot_reach_or_poison_another_execution(
    service: GearService, base_image: str, tmp_path: Path
) -> None:
    victim_code = code(
        tmp_path, "from client import *\nprint(put(metric('mine', 1)))\nimport time; time.sleep(120)\n"
    )
    outcome: list[BaseException] = []

    def victim() -> None:
        try:
            run(GearService(service.settings), command="python3 main.py", code=victim_code)
        except BaseException as error:
            outcome.append(error)

    thread = threading.Thread(target=victim)
    thread.start()
    try:
        running = wait_for_state(service, "metrics/1", ExecutionState.RUNNING)
        environment = dict(
            item.split("=", 1) for item in service.runner.inspect(running.container_name)["Config"]["Env"]
        )
        attacker = """
            import json
            from client import *
            results = {
                "victim's url": put(metric("stolen", 1), url=OTHER_URL, token=OTHER_TOKEN),
                "victim's token": put(metric("stolen", 2), token=OTHER_TOKEN),
                "no token": put(metric("stolen", 3), token=""),
                "clear the victim's": put(b"", url=OTHER_URL + "/metrics/mine", token=OTHER_TOKEN, method="DELETE"),
                "NaN": put(b'{"metrics": {"acc": [{"value": NaN}]}}'),
                "300 KB body": put(b"{" + b" " * 300000 + b"}"),
                "markup": put(metric("<script>alert(1)</script>", 1)),
                "own": put(metric("acc", 0.5)),
            }
            with open("/hyperai/metrics/events.jsonl", "ab") as forged:
                forged.write(b"x" * 10_000_000 + b"\\n")
                body = json.dumps(metric("forged", 7))
                forged.write(json.dumps({"at": 0, "method": "PUT", "path": "/job", "body": body}).encode() + b"\\n")
                forged.write(b'{"at": 1, "method": "PUT", "path": "/job", "body": "{\\\\"metrics\\\\": {\\\\"x\\\\": [{\\\\"value\\\\": NaN}]}}"}\\n')
            print(json.dumps(results))
            print("y" * 10_000_000)
            print('{"metric": "after", "value": 1}')
        """
        attacker = attacker.replace("OTHER_URL", repr(environment["JOB_UPDATE_URL"]))
        attacker = attacker.replace("OTHER_TOKEN", repr(environment["JOB_ACCESS_TOKEN"]))
        lines: list[str] = []
        record = run(service, lines, command="python3 main.py", code=code(tmp_path, attacker))
        results = json.loads(next(line for line in lines if line.startswith('{"victim')))
        assert results["victim's url"] in ("URLError", 401)  # refused, or this container's own receiver
        assert results["clear the victim's"] in ("URLError", 401)
        assert results["victim's token"] == results["no token"] == 401
        assert results["300 KB body"] == 413 and results["NaN"] == results["own"] == 200
        points = stored(service, record)
        assert sorted(points) == [  # the receiver's records and output lines arrive in either order
            ("<script>alert(1)</script>", 1, 1.0),
            ("acc", 1, 0.5),
            ("after", 1, 1.0),
            ("forged", 1, 7.0),
        ]
        refused = "\n".join(line for line in lines if line.startswith("[hyperai] metric refused"))
        assert "'acc': the value is NaN" in refused and "'x': the value is NaN" in refused
        assert "a receiver record longer than 65,536 bytes" in refused
    finally:
        service.stop("metrics/1")
        thread.join(timeout=60)
    assert len(outcome) == 1 and isinstance(outcome[0], ExecutionTerminatedError)
    victim_record = service.get("metrics/1")
    assert stored(service, victim_record) == [("mine", 1, 1.0)]
    assert managed_names(service.settings.storage_root) == set()


@pytest.mark.parametrize("kind", ["symlink", "fifo", "directory"])
def test_a_metrics_file_that_is_not_a_regular_file_is_never_opened(
    service: GearService, base_image: str, tmp_path: Path, kind: str
) -> None:
    host_file = tmp_path / "host-secret.jsonl"  # what a followed symlink would read: a valid record
    body = json.dumps({"metrics": {"leaked": [{"value": 1}]}})
    host_file.write_text(json.dumps({"at": 0, "method": "PUT", "path": "/job", "body": body}) + "\n")
    replace = {
        "symlink": f"ln -s {host_file} events.jsonl",
        "fifo": "mkfifo events.jsonl",
        "directory": "mkdir events.jsonl",
    }[kind]
    lines: list[str] = []
    began = time.monotonic()
    record = run(
        service, lines, command=f"cd /hyperai/metrics && rm -f events.jsonl && {replace} && echo replaced"
    )
    assert time.monotonic() - began < 30  # a FIFO is never waited on
    assert record.state is ExecutionState.SUCCEEDED and stored(service, record) == []
    said = {"symlink": "symlink", "fifo": "FIFO", "directory": "dir"}[kind]
    assert f"[hyperai] metrics: the receiver's file is a {said}, not a regular file: not read" in lines, lines
    assert host_file.read_text().count("\n") == 1


def test_the_metrics_folder_is_bounded_by_the_disk_quota(
    service: GearService, base_image: str, tmp_path: Path
) -> None:
    (service.settings.storage_root / "compute_types.yaml").write_text(
        "small-disk:\n  cpus: 1\n  memory: 256MiB\n  disk_quota: 32MiB\n"  # metrics: 2 MiB at most
    )
    flood = """
        import json
        body = json.dumps({"metrics": {"n": [{"value": 1}]}})
        line = (json.dumps({"at": 0, "method": "PUT", "path": "/job", "body": body}) + "\\n").encode()
        with open("/hyperai/metrics/events.jsonl", "ab") as out:
            out.write(line * (3 * 1024 * 1024 // len(line)))
    """
    lines: list[str] = []
    record = run(
        service, lines, compute_type="small-disk", command="python3 main.py", code=code(tmp_path, flood)
    )
    count = service.store.metrics.count(record.id)
    assert 0 < count < 3 * 1024 * 1024 // 90 and count * 90 < 2 * 1024 * 1024
    assert any(
        "records past the first 2,097,152 bytes of the receiver's file were left out" in line
        for line in lines
    )

    with pytest.raises(ExecutionFailedError, match="the metrics folder holds .* over its limit of 2,097,152"):
        run(
            service,
            compute_type="small-disk",
            command="head -c 4000000 /dev/zero > /hyperai/metrics/junk; sleep 60",
        )


def test_a_workspace_reports_metrics_through_its_receiver_and_its_output(
    service: GearService, jupyter_image: str
) -> None:
    from hyperai_provider.core.workspace import WorkspaceOptions

    workspaces = service.workspaces
    options = WorkspaceOptions(idle_timeout=None)
    spec = build_spec(gear="metrics-ws", image="jupyter", mode="workspace")
    workspace = workspaces.start(workspaces.plan(spec, options), options, on_line=lambda _line: None)
    name = workspace.record.container_name
    try:
        put = textwrap.dedent(CLIENT) + "print(put(metric('acc', 0.9)), put({'parameters': {'lr': 0.1}}))"
        done = subprocess.run(["docker", "exec", name, "python3", "-c", put], capture_output=True, text=True)
        assert done.stdout.split() == ["200", "200"], done.stderr
        line = '{"metric": "loss", "value": 0.2}'
        subprocess.run(["docker", "exec", name, "sh", "-c", f"echo '{line}' > /proc/1/fd/1"], check=True)
        shown = run_cli("metrics", workspace.record.id, storage_root=service.settings.storage_root, env=ALICE)
        assert shown.returncode == 0 and "acc" in shown.stdout  # taken by the CLI while the workspace runs
        service.stop(workspace.record.id, "done")
        deadline = time.monotonic() + 60
        while (end := workspaces.check(workspace.record.id)) is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert end is not None
        record = workspaces.finish(workspace.record.id, end)
    finally:
        service.runner.remove(name)
    assert stored(service, record) == [("acc", 1, 0.9), ("loss", 1, 0.2)]
    assert service.store.metrics.params(record.id) == {"lr": 0.1}


def test_deleting_an_execution_deletes_its_metrics(service: GearService, base_image: str) -> None:
    record = run(service, command="""echo '{"metric": "acc", "value": 1}'""")
    assert service.store.metrics.count(record.id) == 1
    assert (service.storage.execution_dir(record.gear, record.number) / FOLDER).exists() is False
    service.lifecycle.delete_execution(record.id)
    assert service.store.metrics.count(record.id) == 0 and service.store.metrics.last_values(record.id) == {}


def test_another_user_cannot_read_the_metrics_of_a_private_gear(
    service: GearService, base_image: str
) -> None:
    record = run(service, command="""echo '{"metric": "acc", "value": 1}'""")
    shown = run_cli(
        "metrics", record.id, storage_root=service.settings.storage_root, env={"HYPERAI_USER": "mallory"}
    )
    assert shown.returncode == 3 and "does not exist" in shown.stderr and "acc" not in shown.stdout
