"""The working-directory browser: listings, file views, downloads and the archive, never leaving the
execution's working directory (the merged view refuses '..' and never follows symlinks)."""

from __future__ import annotations

import codecs
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from hyperai_provider.core import safecopy
from hyperai_provider.core.layers import MergedEntry, MergedView
from hyperai_provider.exceptions import ConfigurationError, NotFoundError
from hyperai_provider.models import ExecutionRecord, execution_id
from hyperai_provider.plugins import render
from hyperai_provider.plugins.deps import CallerDep
from hyperai_provider.plugins.routes import base
from hyperai_provider.plugins.schemas import FileEntryOut

router = APIRouter(tags=["files"])
VIEW_LIMIT = 1024 * 1024
"""Bytes of a file shown on its page (larger files show their first VIEW_LIMIT bytes and a download link)."""
MARKDOWN_LIMIT = 256 * 1024
"""Largest markdown file rendered (a README under a listing, a .md page); larger ones show as text.
Rendering is linear but not free: 1 MiB of hostile markdown takes up to ~2 s of server time."""
DOWNLOAD_CHUNK = 64 * 1024
"""Downloads are streamed in chunks of this size: the server never holds a whole file."""


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


def read_head(entry: MergedEntry, limit: int = VIEW_LIMIT) -> tuple[bytes, int]:
    """The first ``limit`` bytes of a regular file (never through a symlink, never a FIFO or device),
    and its size."""
    try:
        fd, st = safecopy.open_regular(entry.path)
    except safecopy.Unsafe as error:
        raise ConfigurationError(f"{entry.relative!r} is not a regular file ({error.kind}).") from None
    with os.fdopen(fd, "rb") as handle:
        return handle.read(min(limit, st.st_size)), st.st_size


def preview_text(head: bytes, cut: bool) -> str | None:
    """``head`` as text, or None when it looks binary (a NUL byte, or not UTF-8). When the head was cut
    from a longer file, a character split at the cut is dropped rather than called binary."""
    if b"\0" in head:
        return None
    try:
        return codecs.getincrementaldecoder("utf-8")().decode(head, final=not cut)
    except UnicodeDecodeError:
        return None


def readme_html(view: MergedView, relative: str) -> str:
    """The README rendered with the safe markdown subset (empty if there is none or it is too large)."""
    try:
        entry = view.lookup(relative)
    except ConfigurationError:
        return ""
    if entry is None or entry.kind != "file" or entry.path.stat().st_size > MARKDOWN_LIMIT:
        return ""
    try:
        head, _ = read_head(entry, MARKDOWN_LIMIT)
    except ConfigurationError:
        return ""
    text = head.decode("utf-8", errors="replace")
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
        return download_response(entry, Path(path).name)
    else:
        head, size = read_head(entry)
        cut = size > len(head)
        text = preview_text(head, cut)
        download_link = render.link(f"{home}/executions/{record.id}/files/{path}?download=1", "Download")
        note = (
            f'<p class="hint" id="preview-note">Showing the first {render.size(len(head))} of '
            f"{render.size(size)}; {download_link} the file to see all of it.</p>"
            if cut
            else ""
        )
        if text is None:
            shown = "<p>Binary file.</p>"
        elif path.lower().endswith((".md", ".markdown")) and size <= MARKDOWN_LIMIT:
            shown = f'<div class="readme" id="readme">{render.markdown(text)}</div>'
        else:
            shown = f'<pre id="content">{render.esc(text)}</pre>'
        body = f"<p>{download_link} ({render.size(size)})</p>{note}{shown}"
    up = render.link(f"{home}/executions/{record.id}", f"Execution {record.id}")
    return HTMLResponse(render.page(home, f"{record.id}: /{path}", f"<p>{up}</p>{body}"))


def download_response(entry: MergedEntry, filename: str) -> Response:
    """The file as an attachment of an opaque type (a saved .html must never render in Airflow's
    origin), streamed in ``DOWNLOAD_CHUNK`` pieces from a descriptor opened as a regular file only."""
    try:
        fd, st = safecopy.open_regular(entry.path)
    except safecopy.Unsafe as error:
        raise ConfigurationError(f"{entry.relative!r} is not a regular file ({error.kind}).") from None
    quoted = quote(filename)
    disposition = (
        f"attachment; filename*=utf-8''{quoted}"
        if quoted != filename
        else f'attachment; filename="{filename}"'
    )
    handle = os.fdopen(fd, "rb")  # closed after the response, or when collected if it was never sent
    return StreamingResponse(
        _chunks(handle, st.st_size),
        media_type="application/octet-stream",
        headers={"content-disposition": disposition, "content-length": str(st.st_size)},
        background=BackgroundTask(handle.close),
    )


def _chunks(handle: BinaryIO, size: int) -> Iterator[bytes]:
    """``size`` bytes from ``handle`` (as many as it held when opened, matching Content-Length)."""
    with handle:
        while size > 0:
            chunk = handle.read(min(DOWNLOAD_CHUNK, size))
            if not chunk:
                return
            size -= len(chunk)
            yield chunk


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
