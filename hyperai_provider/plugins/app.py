"""The FastAPI app mounted by Airflow at ``/hyperai``: one router per resource, JSON under ``/api``, pages elsewhere."""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hyperai_provider.exceptions import ConfigurationError, ConflictError, HyperAIError, NotFoundError
from hyperai_provider.plugins import render
from hyperai_provider.plugins.routes import same_origin

URL_PREFIX = "/hyperai"
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'self'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
PROXIED = "/workspaces/"
"""Routes under this path relay JupyterLab (routes/workspaces.py): its pages carry its own headers."""
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_STATUS = ((NotFoundError, 404), (ConflictError, 409), (ConfigurationError, 400))


def _status_of(error: HyperAIError) -> int:
    return next((status for kind, status in _STATUS if isinstance(error, kind)), 500)


async def _hyperai_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HyperAIError)
    status = _status_of(error)
    if "/api/" in request.url.path:
        return JSONResponse({"detail": error.headline, "hint": error.hint}, status_code=status)
    # Our own page, also where the middleware leaves headers alone (an error on a proxied path).
    return HTMLResponse(
        render.error_page(status, error.headline, error.hint), status_code=status, headers=SECURITY_HEADERS
    )


class SecurityMiddleware:
    """Refuse cross-origin actions; give the app's own pages a strict CSP and companions.

    Plain ASGI (no ``BaseHTTPMiddleware``), so proxied bodies stream through untouched; responses relayed
    from JupyterLab keep Jupyter's own headers (it needs its scripts, which the strict CSP forbids)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] not in SAFE_METHODS and not same_origin(Headers(scope=scope)):
            response = JSONResponse({"detail": "Cross-origin request refused."}, status_code=403)
            await response(scope, receive, send)
            return
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if (path[len(root) :] if path.startswith(root) else path).startswith(PROXIED):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app() -> FastAPI:
    """Build the HyperAI app (no settings, store or Airflow config are read here)."""
    from hyperai_provider.plugins.routes import datasets, executions, files, gears, workspaces

    app = FastAPI(title="HyperAI Gears", docs_url=None, redoc_url=None, openapi_url="/api/openapi.json")
    app.add_exception_handler(HyperAIError, _hyperai_error)
    app.add_middleware(SecurityMiddleware)
    for module in (gears, executions, files, datasets, workspaces):
        app.include_router(module.router)
    return app
