"""One router per resource: gears, executions, files, datasets; and the workspaces proxy (JupyterLab)."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.datastructures import Headers


def base(request: Request) -> str:
    """The app's mount point (``/hyperai`` under Airflow), for links in pages."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def is_form(request: Request) -> bool:
    return request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    )


def action_done(request: Request, message: str, location: str) -> Response:
    """Pages (form posts) are redirected to ``location``; API clients get the message as JSON."""
    if is_form(request):
        return RedirectResponse(f"{base(request)}{location}", status_code=303)
    return JSONResponse({"message": message, "location": f"{base(request)}{location}"})


def same_origin(headers: Headers) -> bool:
    """Session cookies ride along on cross-site requests: one whose Origin (else Referer) names another
    host is refused. Used for unsafe methods here and for every WebSocket handshake of the proxy."""
    origin = headers.get("origin") or headers.get("referer")
    return not origin or urlsplit(origin).netloc == headers.get("host")
