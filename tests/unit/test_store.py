"""The Gear store on a real SQLite file: ids never reused, safe across processes."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from hyperai_provider.core.store import GearStore
from hyperai_provider.exceptions import ConflictError, NotFoundError
from hyperai_provider.models import ComputeType, ExecutionRecord, ExecutionState

CPU = ComputeType(name="cpu", cpus=1, memory="2GiB", disk_quota="1GiB")


def _record(id_: str, number: int, gear: str = "g") -> ExecutionRecord:
    return ExecutionRecord(id=id_, gear=gear, number=number, compute=CPU, image="img")


def _allocate(url: str, count: int, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    store = GearStore(url)
    for _ in range(count):
        queue.put(store.create_execution("g", "u", lambda id_, n: _record(id_, n)).number)


def test_ids_count_up_per_gear_and_are_never_reused(tmp_path: Path) -> None:
    store = GearStore(f"sqlite:///{tmp_path / 'store.db'}")
    first = store.create_execution("a", "u", lambda id_, n: _record(id_, n, "a"))
    second = store.create_execution("a", "u", lambda id_, n: _record(id_, n, "a"))
    other = store.create_execution("b", "u", lambda id_, n: _record(id_, n, "b"))
    assert (first.id, second.id, other.id) == ("a/1", "a/2", "b/1")
    store.delete_execution_row("a/2")
    assert store.create_execution("a", "u", lambda id_, n: _record(id_, n, "a")).id == "a/3"


def test_concurrent_processes_get_distinct_numbers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    GearStore(url).ensure_gear("g", "u")
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_allocate, args=(url, 15, queue)) for _ in range(4)]
    for worker in workers:
        worker.start()
    numbers = [queue.get(timeout=120) for _ in range(60)]
    for worker in workers:
        worker.join(timeout=60)
    assert sorted(numbers) == list(range(1, 61))


def test_transitions_follow_the_state_machine(tmp_path: Path) -> None:
    store = GearStore(f"sqlite:///{tmp_path / 'store.db'}")
    record = store.create_execution("g", "u", lambda id_, n: _record(id_, n))
    store.transition(record.id, ExecutionState.PREPARING)
    with pytest.raises(ConflictError, match="cannot go from preparing to succeeded"):
        store.transition(record.id, ExecutionState.SUCCEEDED)
    failed = store.transition(record.id, ExecutionState.FAILED, "boom", failure_reason="boom")
    assert store.get_execution(record.id) == failed
    assert store.list_executions("g", {ExecutionState.FAILED}) == [failed]


def test_missing_records_say_how_to_find_them(tmp_path: Path) -> None:
    store = GearStore(f"sqlite:///{tmp_path / 'store.db'}")
    with pytest.raises(NotFoundError, match="hyperai executions"):
        store.get_execution("g/9")
    with pytest.raises(NotFoundError, match="hyperai gears"):
        store.get_gear("nope")
