"""Read-only grants in the one access layer: an admin reads every gear, a DAG reader reads what that DAG
ran; neither may change anything, and everyone else keeps the plain owner/public rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from hyperai_provider.core.access import Access, ReadGrants
from hyperai_provider.core.store import GearStore
from hyperai_provider.exceptions import ConflictError, NotFoundError
from hyperai_provider.models import AirflowContext, ComputeType, ExecutionRecord, ExecutionState, Visibility
from hyperai_provider.plugins.deps import is_airflow_admin

CPU = ComputeType(name="cpu", cpus=1, memory="2GiB", disk_quota="1GiB")


def _execution(store: GearStore, gear: str, dag: str | None, close: bool) -> ExecutionRecord:
    context = AirflowContext(dag_id=dag, task_id="train", run_id="manual__1") if dag else None
    record = store.create_execution(
        gear,
        "alice",
        lambda id_, n: ExecutionRecord(
            id=id_, gear=gear, number=n, compute=CPU, image="img", airflow=context
        ),
    )
    store.transition(record.id, ExecutionState.PREPARING)
    if close:
        return store.transition(record.id, ExecutionState.FAILED, "boom", failure_reason="boom")
    return store.transition(record.id, ExecutionState.RUNNING)


@pytest.fixture
def store(storage_root: Path) -> GearStore:
    """alice's private gears: 'shared' ran by dag_a (closed, running) and dag_b; 'cli' ran by no DAG."""
    store = GearStore(f"sqlite:///{storage_root / 'store.db'}")
    store.ensure_gear("shared", "alice")
    _execution(store, "shared", "dag_a", close=True)  # shared/1
    _execution(store, "shared", "dag_a", close=False)  # shared/2
    _execution(store, "shared", "dag_b", close=True)  # shared/3
    store.ensure_gear("cli", "alice")
    _execution(store, "cli", None, close=True)
    return store


def _refuses_changes(access: Access, gear: str) -> None:
    with pytest.raises(ConflictError, match="only its owner"):
        access.set_visibility(gear, Visibility.PUBLIC)
    with pytest.raises(ConflictError, match="only its owner"):
        access.owned_gear(gear)
    with pytest.raises(ConflictError, match="belongs to 'alice'"):
        access.require_runnable(gear)


def test_an_admin_reads_every_gear_and_execution_but_changes_none(store: GearStore) -> None:
    admin = Access(store, "ops", ReadGrants(everything=True))
    assert [gear.name for gear in admin.gears()] == ["cli", "shared"]
    assert {r.id for r in admin.executions()} == {"cli/1", "shared/1", "shared/2", "shared/3"}
    assert admin.execution("shared/2").state is ExecutionState.RUNNING
    for gear in ("cli", "shared"):
        _refuses_changes(admin, gear)


def test_a_dag_reader_reads_what_that_dag_ran_and_nothing_else(store: GearStore) -> None:
    asked: list[str] = []

    def dag_a(dag_id: str) -> bool:
        asked.append(dag_id)
        return dag_id == "dag_a"

    reader = Access(store, "rita", ReadGrants(dag=dag_a))
    assert [gear.name for gear in reader.gears()] == ["shared"]
    assert [r.id for r in reader.executions("shared")] == ["shared/1", "shared/2"]  # running ones too
    assert reader.execution("shared/2").state is ExecutionState.RUNNING
    for hidden in ("shared/3", "cli/1"):
        with pytest.raises(NotFoundError, match="does not exist"):
            reader.execution(hidden)
    with pytest.raises(NotFoundError, match="Gear 'cli' does not exist"):
        reader.gear("cli")
    _refuses_changes(reader, "shared")
    assert set(asked) <= {"dag_a", "dag_b"}


def test_without_grants_private_stays_private(store: GearStore) -> None:
    for access in (Access(store, "vera"), Access(store, "vera", ReadGrants(dag=lambda dag_id: False))):
        assert access.gears() == [] and access.executions() == []
        for hidden in ("shared/1", "cli/1"):
            with pytest.raises(NotFoundError):
                access.execution(hidden)
        with pytest.raises(ConflictError, match="belongs to another user"):
            access.require_runnable("shared")  # a private gear's owner is not named


def test_public_gears_still_show_only_closed_executions_to_others(store: GearStore) -> None:
    Access(store, "alice").set_visibility("shared", Visibility.PUBLIC)
    assert [r.id for r in Access(store, "bob").executions("shared")] == ["shared/1", "shared/3"]
    granted = Access(store, "bob", ReadGrants(dag=lambda dag_id: dag_id == "dag_a"))
    assert [r.id for r in granted.executions("shared")] == ["shared/1", "shared/2", "shared/3"]


@pytest.mark.parametrize(
    ("role", "admin"),
    [("admin", True), ("ADMIN", True), ("op", False), ("user", False), ("viewer", False), (None, False)],
)
def test_airflow_admins_are_simple_auth_managers_admin_role(role: str | None, admin: bool) -> None:
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    assert is_airflow_admin(SimpleAuthManagerUser(username="x", role=role)) is admin


def test_fab_style_users_are_admins_through_their_admin_role() -> None:
    class Role:
        def __init__(self, name: str) -> None:
            self.name = name

    class User:
        def __init__(self, *names: str) -> None:
            self.roles = [Role(name) for name in names]

    assert is_airflow_admin(User("Viewer", "Admin")) and not is_airflow_admin(User("Viewer", "Op"))
