"""The FastAPI app mounted by Airflow at ``/hyperai``: one router per resource, JSON under ``/api``, pages elsewhere."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse

from hyperai_provider.exceptions import ConfigurationError, ConflictError, HyperAIError, NotFoundError
from hyperai_provider.plugins import render

URL_PREFIX = "/hyperai"
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'self'; base-uri 'none'"
)
_STATUS = ((NotFoundError, 404), (ConflictError, 409), (ConfigurationError, 400))


def _status_of(error: HyperAIError) -> int:
    return next((status for kind, status in _STATUS if isinstance(error, kind)), 500)


async def _hyperai_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HyperAIError)
    status = _status_of(error)
    if "/api/" in request.url.path:
        return JSONResponse({"detail": error.headline, "hint": error.hint}, status_code=status)
    return HTMLResponse(render.error_page(status, error.headline, error.hint), status_code=status)


async def _security_headers(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        # Session cookies ride along on cross-site form posts: refuse actions from another origin.
        origin = request.headers.get("origin") or request.headers.get("referer")
        if origin and urlsplit(origin).netloc != request.headers.get("host"):
            return JSONResponse({"detail": "Cross-origin request refused."}, status_code=403)
    response = await call_next(request)
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def create_app() -> FastAPI:
    """Build the HyperAI app (no settings, store or Airflow config are read here)."""
    from hyperai_provider.plugins.routes import datasets, executions, files, gears

    app = FastAPI(title="HyperAI Gears", docs_url=None, redoc_url=None, openapi_url="/api/openapi.json")
    app.add_exception_handler(HyperAIError, _hyperai_error)
    app.middleware("http")(_security_headers)
    for module in (gears, executions, files, datasets):
        app.include_router(module.router)
    return app
