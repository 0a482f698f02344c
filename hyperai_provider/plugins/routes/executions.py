"""An execution: its page (timeline, bindings, parameters, task log, working directory, README) and actions."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from hyperai_provider.exceptions import ConfigurationError, ConflictError
from hyperai_provider.models import ExecutionRecord, execution_id
from hyperai_provider.plugins import render
from hyperai_provider.plugins.deps import Caller, CallerDep
from hyperai_provider.plugins.routes import action_done, base
from hyperai_provider.plugins.routes.files import listing_html, readme_html
from hyperai_provider.plugins.routes.gears import read_only_note
from hyperai_provider.plugins.schemas import ExecutionOut

router = APIRouter(tags=["executions"])
README = "README.md"


def task_log_url(record: ExecutionRecord) -> str | None:
    """The Airflow UI page of the task instance that ran this execution (its log tab)."""
    ctx = record.airflow
    if ctx is None:
        return None
    url = f"/dags/{quote(ctx.dag_id, safe='')}/runs/{quote(ctx.run_id, safe='')}/tasks/{quote(ctx.task_id, safe='')}"
    if ctx.map_index >= 0:
        url += f"/mapped/{ctx.map_index}"
    return f"{url}?try_number={ctx.try_number}"


def trigger_continuation(record: ExecutionRecord, user: str) -> str:
    """Trigger a run of the execution's DAG with ``continue_from`` in its conf; return the run id."""
    if record.airflow is None:
        raise ConflictError(
            f"Execution {record.id} did not run from an Airflow DAG, so there is no DAG to continue it with.",
            f"Continue it from a DAG: GearTaskOperator(continue_from={record.id!r}).",
        )
    if not record.closed:
        raise ConflictError(
            f"Execution {record.id} is {record.state.value}; only an ended execution can be continued.",
            "Wait for it to end, or stop it.",
        )
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.exceptions import DagNotFound
    from airflow.utils.types import DagRunTriggeredByType

    try:
        run = trigger_dag(
            record.airflow.dag_id,
            triggered_by=DagRunTriggeredByType.UI,
            triggering_user_name=user,
            conf={"continue_from": record.id},
            note=f"Continue {record.id} (HyperAI)",
        )
    except DagNotFound as error:
        raise ConfigurationError(
            f"DAG {record.airflow.dag_id!r} of execution {record.id} is not known to Airflow.",
            "Make sure its DAG file is in the DAGs folder and parsed.",
        ) from error
    return run.run_id if run else ""


def _record(who: Caller, gear: str, number: int) -> ExecutionRecord:
    return who.access.execution(execution_id(gear, number))


@router.get("/api/executions/{gear}/{number}")
def get_execution(gear: str, number: int, who: CallerDep) -> ExecutionOut:
    return ExecutionOut.of(_record(who, gear, number))


@router.post("/api/executions/{gear}/{number}/continue")
def continue_execution(request: Request, gear: str, number: int, who: CallerDep) -> Response:
    record = _record(who, gear, number)
    who.access.owned_gear(gear)
    run_id = trigger_continuation(record, who.user)
    dag = record.airflow.dag_id if record.airflow else ""
    return action_done(
        request,
        f"Triggered DAG run {run_id} continuing {record.id}",
        f"/gears/{gear}?{urlencode({'dag': dag, 'run': run_id, 'parent': record.id})}",
    )


@router.post("/api/executions/{gear}/{number}/stop")
def stop_execution(request: Request, gear: str, number: int, who: CallerDep) -> Response:
    record = _record(who, gear, number)
    who.access.owned_gear(gear)
    if record.closed:
        raise ConflictError(
            f"Execution {record.id} already ended ({record.state.value}).", "Nothing to stop."
        )
    who.service.stop(record.id, f"stopped by {who.user} in the web UI")
    return action_done(request, f"Asked {record.id} to stop", f"/executions/{record.id}")


@router.post("/api/executions/{gear}/{number}/delete")
def delete_execution(
    request: Request, gear: str, number: int, who: CallerDep, confirm: Annotated[str, Form()] = ""
) -> Response:
    record = _record(who, gear, number)
    who.access.owned_gear(gear)
    if confirm != record.id:
        raise ConfigurationError(
            f"Deleting {record.id} needs confirmation.", f"Send confirm={record.id} (the execution id)."
        )
    deletion = who.lifecycle.delete_execution(record.id)
    return action_done(
        request, f"Deleted {record.id}; released {render.size(deletion.bytes_released)}", f"/gears/{gear}"
    )


@router.get("/executions/{gear}/{number}/delete", response_class=HTMLResponse)
def confirm_delete_page(request: Request, gear: str, number: int, who: CallerDep) -> str:
    record = _record(who, gear, number)
    who.access.owned_gear(gear)
    home = base(request)
    body = (
        f"<p>Delete execution {render.esc(record.id)} and its working directory? This cannot be undone.</p>"
        + render.button(
            f"{home}/api/executions/{record.id}/delete", "Delete", {"confirm": record.id}, "confirm-delete"
        )
        + render.link(f"{home}/executions/{record.id}", "Cancel")
    )
    return render.page(home, f"Delete {record.id}", body)


def _actions(home: str, who: Caller, record: ExecutionRecord) -> str:
    """The owner's actions; anyone else reading it (public gear, Airflow grants) sees why there are none."""
    gear = who.access.gear(record.gear)
    if not who.access.owns(gear):
        return read_only_note(gear.owner)
    api = f"{home}/api/executions/{record.id}"
    parts = []
    if record.closed and record.airflow is not None:
        parts.append(render.button(f"{api}/continue", "Continue", id_="continue"))
    if not record.closed:
        parts.append(render.button(f"{api}/stop", "Stop", id_="stop"))
    if record.closed:
        parts.append(render.link(f"{home}/executions/{record.id}/delete", "Delete…"))
        parts.append(
            f'<form method="post" action="{render.esc(api)}/dataset-version">'
            '<input name="dataset" placeholder="dataset name" required>'
            '<button id="dataset-version">Create dataset version</button></form>'
        )
    return "<p>" + "".join(parts) + "</p>"


@router.get("/executions/{gear}/{number}", response_class=HTMLResponse)
def execution_page(request: Request, gear: str, number: int, who: CallerDep) -> str:
    home = base(request)
    record = _record(who, gear, number)
    out = ExecutionOut.of(record)
    facts = [
        ["State", f'<span class="state" id="state">{render.esc(out.state)}</span>'],
        ["Mode", render.esc(out.mode)],
        ["Compute type", render.esc(out.compute_type)],
        ["Image", render.esc(out.image)],
        ["Owner", render.esc(out.owner)],
        ["Parent", render.link(f"{home}/executions/{out.parent}", out.parent) if out.parent else ""],
        ["Storage", render.size(out.bytes_stored)],
        ["Failure", render.esc(record.failure_reason or "")],
    ]
    log_url = task_log_url(record)
    if log_url:
        facts.append(
            ["Airflow task", render.link(log_url, f"{out.dag_id} / {out.run_id} / {out.task_id} (log)")]
        )
    timeline = [
        [render.esc(render.when(c.at)), render.esc(c.state.value), render.esc(c.message)]
        for c in record.history
    ]
    bindings = [
        [
            render.esc(b.slot),
            render.esc(b.source.model_dump_json(exclude={"kind"})),
            render.esc(b.source.kind),
        ]
        for b in record.inputs
    ]
    parameters = [[render.esc(k), render.esc(v)] for k, v in record.parameters.items()]
    view = who.service.workdir_view(record)
    body = (
        _actions(home, who, record)
        + render.table(["", ""], facts, "facts")
        + "<h2>State timeline</h2>"
        + render.table(["At", "State", "Message"], timeline, "timeline")
        + "<h2>Input bindings</h2>"
        + render.table(["Slot", "Source", "Kind"], bindings, "bindings")
        + "<h2>Parameters</h2>"
        + render.table(["Name", "Value"], parameters, "parameters")
        + "<h2>Working directory</h2>"
        + f"<p>{render.link(f'{home}/executions/{record.id}/archive.tar.gz', 'Download as .tar.gz')}</p>"
        + listing_html(home, record, view, "")
        + readme_html(view, README)
    )
    return render.page(home, f"Execution {record.id}", body)
