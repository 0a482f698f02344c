"""Which execution a Gear task try continues from: previous try, DAG run conf/params, or the argument."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from hyperai_provider.core.gears import GearService
from hyperai_provider.exceptions import ConfigurationError
from hyperai_provider.models import AirflowContext, ComputeType, ExecutionRecord, ExecutionState
from hyperai_provider.operators import GearTaskOperator


def add(service: GearService, try_number: int, run_id: str = "run1", saved: bool = True) -> str:
    def build(id_: str, number: int) -> ExecutionRecord:
        return ExecutionRecord(
            id=id_,
            gear="g",
            number=number,
            state=ExecutionState.FAILED,
            compute=ComputeType(name="cpu", cpus=1, memory=1024**3, disk_quota=1024**3),  # type: ignore[arg-type]
            image="img",
            airflow=AirflowContext(dag_id="d", task_id="t", run_id=run_id, try_number=try_number),
        )

    record = service.store.create_execution("g", "alice", build)
    if saved:
        service.storage.saved_marker("g", record.number).parent.mkdir(parents=True)
        service.storage.saved_marker("g", record.number).write_text("{}")
    return record.id


def choose(service: GearService, try_number: int, conf: Any = None, params: Any = None, **kwargs: Any) -> Any:
    operator = GearTaskOperator(task_id="t", command="true", gear="g", **kwargs)
    operator._service = service
    airflow = AirflowContext(dag_id="d", task_id="t", run_id="run1", try_number=try_number)
    context = {"dag_run": SimpleNamespace(conf=conf), "params": params or {}}
    return operator._continue_from(context, airflow, "g")  # type: ignore[arg-type]


def test_a_retry_continues_from_the_latest_saved_earlier_try(service: GearService) -> None:
    add(service, 1)
    second = add(service, 2)
    add(service, 3, saved=False)  # never saved: not a parent
    add(service, 1, run_id="other-run")
    assert choose(service, 4) == second
    assert choose(service, 4, conf={"continue_from": "x/1"}) == second  # the previous try wins
    assert choose(service, 4, on_retry="restart") is None
    assert choose(service, 1) is None  # the first try has no previous one


def test_dag_run_conf_then_params_then_the_argument(service: GearService) -> None:
    assert choose(service, 1, conf={"continue_from": "a/1"}, params={"continue_from": "b/1"}) == "a/1"
    assert choose(service, 1, conf={}, params={"continue_from": "b/1"}, continue_from="c/1") == "b/1"
    assert choose(service, 1, conf={"continue_from": {"t": "a/2", "other": "z/9"}}) == "a/2"
    assert choose(service, 1, conf={"continue_from": {"other": "z/9"}}, continue_from="c/1") == "c/1"
    assert choose(service, 2, continue_from="latest") == "latest"  # no earlier try recorded


def test_on_retry_is_checked_when_the_dag_is_parsed() -> None:
    with pytest.raises(ConfigurationError, match="on_retry='again'"):
        GearTaskOperator(task_id="t", command="true", on_retry="again")  # type: ignore[arg-type]
