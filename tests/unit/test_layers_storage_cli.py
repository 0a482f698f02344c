"""`hyperai storage`: bytes per execution (own layer only), per gear and in total, from the store alone."""

from __future__ import annotations

import json
from pathlib import Path

from hyperai_provider.core.gears import GearService
from hyperai_provider.models import ComputeType, ExecutionRecord, ExecutionState
from tests.conftest import run_cli

ALICE = {"HYPERAI_USER": "alice"}  # the owner: gears are private to their owner by default


def add(service: GearService, gear: str, stored: int | None, parent: str | None = None) -> None:
    def build(id_: str, number: int) -> ExecutionRecord:
        return ExecutionRecord(
            id=id_,
            gear=gear,
            number=number,
            state=ExecutionState.SUCCEEDED if stored is not None else ExecutionState.RUNNING,
            compute=ComputeType(name="cpu", cpus=1, memory=1024**3, disk_quota=1024**3),  # type: ignore[arg-type]
            image="img",
            bytes_stored=stored,
            parent=parent,
            lower_layers=[f"gears/{gear}/1/home"] if parent else [],
        )

    service.store.create_execution(gear, "alice", build)


def test_storage_answers_from_the_records_without_walking_the_tree(
    service: GearService, storage_root: Path
) -> None:
    add(service, "train", 5_000_000)
    add(service, "train", 1_200, parent="train/1")  # a continuation: only what it changed
    add(service, "train", None)  # still running: nothing recorded yet
    add(service, "eval", 300)
    service.store.dispose()
    assert not any((storage_root / "gears").iterdir())  # no layers at all: the numbers come from the store

    total = run_cli("storage", "--json", storage_root=storage_root, env=ALICE)
    assert total.returncode == 0, total.stderr
    assert json.loads(total.stdout) == {
        "total_bytes": 5_001_500,
        "gears": [
            {"gear": "eval", "executions": 1, "bytes": 300},
            {"gear": "train", "executions": 3, "bytes": 5_001_200},
        ],
    }
    one = json.loads(run_cli("storage", "train", "--json", storage_root=storage_root, env=ALICE).stdout)
    assert one["total_bytes"] == 5_001_200
    assert one["executions"][1] == {
        "id": "train/2",
        "state": "succeeded",
        "parent": "train/1",
        "layers": 2,
        "bytes": 1200,
    }
    table = run_cli("storage", "train", storage_root=storage_root, env=ALICE).stdout
    assert "train/2" in table and "1.2 KB" in table and "TOTAL" in table
    missing = run_cli("storage", "nope", storage_root=storage_root, env=ALICE)
    assert missing.returncode == 3 and "does not exist" in missing.stderr
