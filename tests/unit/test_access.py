"""Visibility through the one query layer: owners see all, others see closed executions of public gears
and nothing of private ones ("does not exist", never "forbidden")."""

from __future__ import annotations

from pathlib import Path

import pytest

from hyperai_provider.core.access import Access
from hyperai_provider.core.store import GearStore
from hyperai_provider.exceptions import ConflictError, NotFoundError
from hyperai_provider.models import ComputeType, ExecutionRecord, ExecutionState, Visibility
from tests.conftest import run_cli

CPU = ComputeType(name="cpu", cpus=1, memory="2GiB", disk_quota="1GiB")


def _execution(store: GearStore, gear: str, close: bool) -> ExecutionRecord:
    record = store.create_execution(
        gear, "alice", lambda id_, n: ExecutionRecord(id=id_, gear=gear, number=n, compute=CPU, image="img")
    )
    store.transition(record.id, ExecutionState.PREPARING)
    if close:
        return store.transition(record.id, ExecutionState.FAILED, "boom", failure_reason="boom")
    return store.transition(record.id, ExecutionState.RUNNING)


@pytest.fixture
def store(storage_root: Path) -> GearStore:
    store = GearStore(f"sqlite:///{storage_root / 'store.db'}")
    for gear in ("priv", "pub"):
        store.ensure_gear(gear, "alice")
        _execution(store, gear, close=True)
        _execution(store, gear, close=False)
    Access(store, "alice").set_visibility("pub", Visibility.PUBLIC)
    return store


def test_the_owner_sees_everything(store: GearStore) -> None:
    alice = Access(store, "alice")
    assert [gear.name for gear in alice.gears()] == ["priv", "pub"]
    assert {record.id for record in alice.executions()} == {"priv/1", "priv/2", "pub/1", "pub/2"}
    assert alice.execution("priv/2").state is ExecutionState.RUNNING


def test_others_see_closed_executions_of_public_gears_and_nothing_of_private_ones(store: GearStore) -> None:
    bob = Access(store, "bob")
    assert [gear.name for gear in bob.gears()] == ["pub"]
    assert [record.id for record in bob.executions()] == ["pub/1"]
    assert [record.id for record in bob.executions("pub")] == ["pub/1"]
    assert bob.execution("pub/1").state is ExecutionState.FAILED
    for hidden in ("pub/2", "priv/1", "priv/2", "nonsense"):
        with pytest.raises(NotFoundError, match="does not exist"):
            bob.execution(hidden)
    with pytest.raises(NotFoundError, match="Gear 'priv' does not exist"):
        bob.executions("priv")
    with pytest.raises(ConflictError, match="only its owner"):
        bob.set_visibility("pub", Visibility.PRIVATE)
    with pytest.raises(NotFoundError):
        bob.set_visibility("priv", Visibility.PUBLIC)


def test_the_cli_reads_through_the_same_layer(store: GearStore, storage_root: Path) -> None:
    as_bob = {"HYPERAI_USER": "bob"}
    listed = run_cli("gears", "--json", storage_root=storage_root, env=as_bob)
    assert listed.returncode == 0, listed.stderr
    assert '"priv"' not in listed.stdout and '"pub"' in listed.stdout
    hidden = run_cli("show", "priv/1", storage_root=storage_root, env=as_bob)
    assert hidden.returncode == 3 and "does not exist" in hidden.stderr
    made_private = run_cli(
        "visibility", "pub", "private", storage_root=storage_root, env={"HYPERAI_USER": "alice"}
    )
    assert made_private.returncode == 0, made_private.stderr
    assert run_cli("show", "pub/1", storage_root=storage_root, env=as_bob).returncode == 3
