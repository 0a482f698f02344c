"""The working-directory browser: listings, file views, downloads and the archive, never leaving the
execution's working directory (the merged view refuses '..' and never follows symlinks)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.background import BackgroundTask

from hyperai_provider.core.layers import MergedEntry, MergedView
from hyperai_provider.exceptions import ConfigurationError, NotFoundError
from hyperai_provider.models import ExecutionRecord, execution_id
from hyperai_provider.plugins import render
from hyperai_provider.plugins.deps import CallerDep
from hyperai_provider.plugins.routes import base
from hyperai_provider.plugins.schemas import FileEntryOut

router = APIRouter(tags=["files"])
VIEW_LIMIT = 1024 * 1024
"""Files larger than this are offered for download instead of shown."""


def locate(view: MergedView, record: ExecutionRecord, relative: str) -> MergedEntry:
    """The entry at ``relative``; symlinks are refused (they may point anywhere), absent paths are 404."""
    entry = view.lookup(relative)
    if entry is None:
        raise NotFoundError(f"{relative!r} does not exist in the working directory of {record.id}.")
    if entry.kind == "symlink":
        raise ConfigurationError(
            f"{relative!r} is a symbolic link; links are not followed in the web UI.",
            f"Download the archive or use `hyperai download {record.id}` to get it.",
        )
    if entry.kind == "file" and os.path.realpath(entry.path) != os.path.abspath(entry.path):
        raise ConfigurationError(f"{relative!r} leads outside the working directory.")
    return entry


def _view(who: CallerDep, gear: str, number: int) -> tuple[ExecutionRecord, MergedView]:
    record = who.access.execution(execution_id(gear, number))
    return record, who.service.workdir_view(record)


def _size(entry: MergedEntry) -> int | None:
    return entry.path.stat().st_size if entry.kind == "file" else None


def listing_html(home: str, record: ExecutionRecord, view: MergedView, relative: str) -> str:
    try:
        entries = view.listdir(relative)
    except (ConfigurationError, FileNotFoundError):
        return "<p>No working directory (yet).</p>"
    files_url = f"{home}/executions/{record.id}/files"
    rows = [
        [
            render.link(
                f"{files_url}/{e.relative}", Path(e.relative).name + ("/" if e.kind == "dir" else "")
            ),
            render.esc(e.kind),
            render.size(_size(e)),
            render.link(f"{files_url}/{e.relative}?download=1", "download") if e.kind == "file" else "",
        ]
        for e in entries
    ]
    return render.table(["Name", "Kind", "Size", ""], rows, "files")


def readme_html(view: MergedView, relative: str) -> str:
    """The README rendered with the safe markdown subset (empty if there is none)."""
    try:
        entry = view.lookup(relative)
    except ConfigurationError:
        return ""
    if entry is None or entry.kind != "file" or entry.path.stat().st_size > VIEW_LIMIT:
        return ""
    text = entry.path.read_text(encoding="utf-8", errors="replace")
    return f'<h2>{render.esc(relative)}</h2><div class="readme" id="readme">{render.markdown(text)}</div>'


@router.get("/api/executions/{gear}/{number}/files")
@router.get("/api/executions/{gear}/{number}/files/{path:path}")
def list_files(gear: str, number: int, who: CallerDep, path: str = "") -> list[FileEntryOut]:
    record, view = _view(who, gear, number)
    if locate(view, record, path).kind != "dir":
        raise ConfigurationError(f"{path!r} is a file, not a folder.", "Add ?download=1 on the page URL.")
    return [FileEntryOut(path=e.relative, kind=e.kind, bytes=_size(e)) for e in view.listdir(path)]


@router.get("/executions/{gear}/{number}/files", response_class=HTMLResponse)
@router.get("/executions/{gear}/{number}/files/{path:path}", response_class=HTMLResponse)
def file_page(
    request: Request, gear: str, number: int, who: CallerDep, path: str = "", download: bool = False
) -> Response:
    home = base(request)
    record, view = _view(who, gear, number)
    entry = locate(view, record, path)
    if entry.kind == "dir":
        body = listing_html(home, record, view, path) + readme_html(view, f"{path}/README.md")
    elif entry.kind != "file":
        raise ConfigurationError(f"{path!r} is not a regular file.")
    elif download:
        # Always an attachment of an opaque type: a saved .html must never render in Airflow's origin.
        return FileResponse(entry.path, media_type="application/octet-stream", filename=Path(path).name)
    else:
        content = entry.path.read_bytes()[: VIEW_LIMIT + 1]
        try:
            text = content.decode("utf-8") if len(content) <= VIEW_LIMIT else None
        except UnicodeDecodeError:
            text = None
        shown = (
            f'<pre id="content">{render.esc(text)}</pre>'
            if text is not None
            else "<p>Binary or large file.</p>"
        )
        if path.lower().endswith((".md", ".markdown")) and text is not None:
            shown = f'<div class="readme" id="readme">{render.markdown(text)}</div>'
        download_link = render.link(f"{home}/executions/{record.id}/files/{path}?download=1", "Download")
        body = f"<p>{download_link} ({render.size(entry.path.stat().st_size)})</p>{shown}"
    up = render.link(f"{home}/executions/{record.id}", f"Execution {record.id}")
    return HTMLResponse(render.page(home, f"{record.id}: /{path}", f"<p>{up}</p>{body}"))


@router.get("/executions/{gear}/{number}/archive.tar.gz")
def archive(gear: str, number: int, who: CallerDep) -> Response:
    """The whole working directory (merged view) as .tar.gz; symlinks are archived as links."""
    record, view = _view(who, gear, number)
    who.service.storage.ensure()
    fd, name = tempfile.mkstemp(prefix="web-archive-", suffix=".tar.gz", dir=who.service.storage.tmp)
    with os.fdopen(fd, "wb") as raw:
        view.write_archive(raw)
    return FileResponse(
        name,
        media_type="application/gzip",
        filename=f"{record.gear}-{record.number}.tar.gz",
        background=BackgroundTask(os.unlink, name),
    )
