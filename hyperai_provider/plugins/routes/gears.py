"""Gears: the list (owner, visibility, executions, storage), a gear's history, and its visibility."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from hyperai_provider.models import ExecutionRecord, Visibility
from hyperai_provider.plugins import render
from hyperai_provider.plugins.deps import Caller, CallerDep
from hyperai_provider.plugins.routes import action_done, base
from hyperai_provider.plugins.schemas import ExecutionOut, GearOut
from hyperai_provider.units import human_duration

router = APIRouter(tags=["gears"])
FIRST_STEPS = (
    "<p id=\"empty\">No gears to show yet. Run <code>scripts/quickstart.sh</code> (it trains a small model with "
    "<code>airflow dags test</code> and prints how to open this page), or run a DAG with a "
    "<code>GearTaskOperator</code>.</p>"
    '<p class="hint">A gear belongs to the user its tasks ran as: <code>[hyperai] user</code> or '
    "<code>HYPERAI_USER</code> of the Airflow process that ran them, else that process's login name.</p>"
)
"""What a page with no gears says to do first."""


def who_line(who: Caller) -> str:
    """Who the caller is and what they see, so an empty or partial list explains itself."""
    sees = (
        "every gear, as an Airflow admin (read-only unless it is yours)"
        if who.admin
        else "your gears, public gears, and read-only the gears of DAGs Airflow lets you see"
    )
    return f'<p class="hint" id="who">Signed in as {render.esc(who.user)}: you see {sees}.</p>'


def read_only_note(owner: str) -> str:
    """The note on pages of a gear the caller may read but not change."""
    return (
        f'<p class="hint" id="read-only">Read-only: this gear belongs to {render.esc(owner)}; only its '
        "owner can stop, continue, delete or change it.</p>"
    )


def _gears(who: Caller) -> list[GearOut]:
    records = who.access.executions()
    return [GearOut.of(g, [r for r in records if r.gear == g.name]) for g in who.access.gears()]


@router.get("/api/gears")
def list_gears(who: CallerDep) -> list[GearOut]:
    return _gears(who)


@router.get("/api/gears/{gear}/executions")
def gear_executions(gear: str, who: CallerDep) -> list[ExecutionOut]:
    return [ExecutionOut.of(r) for r in who.access.executions(gear)]


@router.post("/api/gears/{gear}/visibility")
def set_visibility(
    request: Request, gear: str, who: CallerDep, visibility: Annotated[Visibility, Form()]
) -> Response:
    who.access.set_visibility(gear, visibility)
    return action_done(request, f"{gear} is now {visibility.value}", "/")


@router.get("/", response_class=HTMLResponse)
def gears_page(request: Request, who: CallerDep) -> str:
    home = base(request)
    rows = []
    for gear in _gears(who):
        toggle = ""
        if gear.owner == who.user:
            other = "public" if gear.visibility == "private" else "private"
            toggle = render.button(
                f"{home}/api/gears/{gear.name}/visibility", f"Make {other}", {"visibility": other}
            )
        rows.append(
            [
                render.link(f"{home}/gears/{gear.name}", gear.name),
                render.esc(gear.owner),
                render.esc(gear.visibility),
                str(gear.executions),
                render.size(gear.bytes_stored),
                toggle,
            ]
        )
    body = who_line(who) + (
        render.table(["Gear", "Owner", "Visibility", "Executions", "Storage", ""], rows, "gears")
        if rows
        else FIRST_STEPS
    )
    return render.page(home, f"Gears ({who.user})", body)


def history_row(home: str, record: ExecutionRecord) -> list[str]:
    out = ExecutionOut.of(record)
    parent = render.link(f"{home}/executions/{out.parent}", out.parent) if out.parent else ""
    return [
        render.link(f"{home}/executions/{out.id}", out.id),
        f'<span class="state">{render.esc(out.state)}</span>',
        render.esc(out.compute_type),
        render.esc(out.image),
        render.esc(render.when(out.started_at)),
        render.esc(human_duration(out.duration_seconds)),
        render.size(out.bytes_stored),
        parent,
    ]


@router.get("/gears/{gear}", response_class=HTMLResponse)
def gear_page(
    request: Request, gear: str, who: CallerDep, dag: str = "", run: str = "", parent: str = ""
) -> str:
    home = base(request)
    banner = ""
    if run:
        run_link = render.link(f"/dags/{quote(dag, safe='')}/runs/{quote(run, safe='')}", f"{dag} / {run}")
        banner = f'<p id="triggered">Triggered DAG run {run_link} continuing {render.esc(parent)}.</p>'

    found = who.access.gear(gear)
    records = sorted(who.access.executions(gear), key=lambda r: r.number, reverse=True)
    headers = ["Execution", "State", "Compute", "Image", "Started", "Duration", "Storage", "Parent"]
    body = (
        banner
        + f"<p>Owner {render.esc(found.owner)}, {render.esc(found.visibility.value)}</p>"
        + ("" if who.access.owns(found) else read_only_note(found.owner))
        + render.table(headers, [history_row(home, r) for r in records], "history")
    )
    return render.page(home, f"Gear {gear}", body)
