"""Open a running workspace's JupyterLab through the web UI: an owner-only reverse proxy for HTTP and
WebSocket at ``/hyperai/workspaces/<gear>/<n>/...`` that adds the workspace's token server-side.

The token never leaves the api-server: the browser authenticates to Airflow (session cookie or bearer
JWT), this module checks that the caller owns the running workspace and forwards the request to the
container's published port with ``Authorization: token <t>``. JupyterLab runs with
``--ServerApp.base_url=/hyperai/workspaces/<gear>/<n>/`` (core/workspace.py), so its pages and API paths
are the same on both sides and are forwarded unchanged.

The proxy is the security boundary. Every forwarded request carries the token, so Jupyter treats it as
token-authenticated and skips its own XSRF and origin checks; the checks are therefore made here:
Airflow's authentication (401 without login), the owner rule (anyone else gets the same 404 as for a
gear that does not exist), and the app's same-origin rule for unsafe methods (app.py's middleware) and
for every WebSocket handshake (here, before the upgrade is accepted). Upstream, the request is presented
as same-origin (``Host`` is the container's address, ``Origin``/``Referer`` are rewritten to it), and
Airflow's own credentials (its JWT cookie, the bearer header) are not passed to the container.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, cast
from urllib.parse import quote, urlsplit

import httpx
from fastapi import APIRouter, HTTPException, Request, WebSocket
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocketDisconnect

from hyperai_provider.core.workspace import WORKSPACE_URL_PREFIX
from hyperai_provider.exceptions import NotFoundError
from hyperai_provider.models import ExecutionMode, execution_id
from hyperai_provider.plugins.deps import Caller, CallerDep, gear_service
from hyperai_provider.plugins.routes import same_origin

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

router = APIRouter(tags=["workspaces"], include_in_schema=False)

ROUTE = "/workspaces/{gear}/{number}/{path:path}"
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
REQUEST_DROPPED = HOP_BY_HOP | {"host", "authorization", "cookie", "origin", "referer"}
"""Rebuilt for the container (see :func:`upstream_headers`)."""
RESPONSE_DROPPED = HOP_BY_HOP | {
    "access-control-allow-origin",
    "access-control-allow-credentials",
    "access-control-allow-methods",
    "access-control-allow-headers",
    "access-control-expose-headers",
}
"""Jupyter allows a token-authenticated request from any origin; behind the proxy nothing cross-origin is."""
WEBSOCKET_DROPPED = REQUEST_DROPPED | {
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-protocol",
    "sec-websocket-accept",
    "content-length",
}
"""The upstream handshake is the websockets client's own; subprotocols are passed separately."""
TIMEOUT = httpx.Timeout(connect=10.0, read=300.0, write=300.0, pool=10.0)
"""``read`` is per chunk: a large download streams for as long as it takes."""
OPEN_TIMEOUT = 90.0
"""Seconds for the upstream WebSocket handshake: Jupyter answers a kernel's channels only once the kernel
replied to kernel_info (its own timeout is 60 s), which on a busy host is slow."""
WEBSOCKET_MAX_MESSAGE = 256 * 1024 * 1024
"""Kernel output (plots, large dataframes) can exceed the websockets client's 1 MiB default."""


def _airflow_cookie() -> str:
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN

    return COOKIE_NAME_JWT_TOKEN


# -- where the workspace answers ----------------------------------------------------------------------------


def resolve_upstream(caller: Caller, gear: str, number: int) -> tuple[str, str]:
    """``(http://addr:port, token)`` of the caller's own running workspace ``gear/number``.

    The one place the proxy decides who may reach a workspace and where it is. Anyone but the gear's
    owner gets the "does not exist" answer of a private gear; an ended workspace, or one whose container
    is gone, is not found either."""
    id_ = execution_id(gear, number)
    record = caller.access.execution(id_)  # NotFoundError for private gears and others' running executions
    gear_record = caller.access.gear(gear)
    if not caller.access.owns(gear_record):
        raise NotFoundError(
            f"Execution {id_!r} does not exist.", "List executions with `hyperai executions GEAR`."
        )
    if record.mode is not ExecutionMode.WORKSPACE:
        raise NotFoundError(f"Execution {id_} is not a workspace, so it has no JupyterLab.")
    if record.closed:
        raise NotFoundError(
            f"Workspace {id_} has ended ({record.state.value}); its JupyterLab is gone.",
            f"Its working directory is on the execution's page: /hyperai/executions/{id_}",
        )
    upstream = caller.service.workspaces.upstream(record)
    if upstream is None:
        raise NotFoundError(f"Workspace {id_} is not running (its container or token is gone).")
    return upstream


def upstream_path(raw_path: bytes | None, gear: str, number: int, path: str) -> str:
    """The path to request from JupyterLab: its base URL and the rest of the request's path as the client
    encoded it (a file named ``a%2Fb`` must stay one path segment)."""
    base = f"{WORKSPACE_URL_PREFIX}/{gear}/{number}/"  # core.workspace.workspace_path, from the URL's parts
    raw = (raw_path or b"").decode("latin-1")
    marker = f"/workspaces/{gear}/{number}/"
    at = raw.find(marker)
    rest = raw[at + len(marker) :] if at >= 0 else quote(path, safe="/:@!$&'()*+,;=~-._")
    return base + rest


def upstream_headers(
    headers: Iterable[tuple[str, str]], base_url: str, dropped: frozenset[str]
) -> list[tuple[str, str]]:
    """The client's headers for JupyterLab (the caller adds the token): hop-by-hop ones, ``dropped`` ones
    and Airflow's credentials removed, and the request presented as same-origin to the container (its
    Origin/Referer rewritten to ``base_url``)."""
    out: list[tuple[str, str]] = []
    cookie = _airflow_cookie()
    for name, value in headers:
        lower = name.lower()
        if lower == "cookie":
            kept = [
                part.strip()
                for part in value.split(";")
                if part.strip() and part.strip().split("=", 1)[0] != cookie
            ]
            if kept:
                out.append(("cookie", "; ".join(kept)))
        elif lower in ("origin", "referer"):
            parts = urlsplit(value)
            if parts.netloc:
                out.append((lower, base_url + value[len(f"{parts.scheme}://{parts.netloc}") :]))
        elif lower not in dropped:
            out.append((name, value))
    return out


# -- HTTP -----------------------------------------------------------------------------------------------------


def _client() -> httpx.AsyncClient:
    """One pooled client per event loop (the api-server has one per worker; tests make several)."""
    loop = asyncio.get_running_loop()
    client = _CLIENTS.get(loop)
    if client is None:
        client = _CLIENTS[loop] = httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False, trust_env=False)
    return client


_CLIENTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
    weakref.WeakKeyDictionary()
)


def _bad_gateway(id_: str, error: Exception) -> Response:
    return JSONResponse(
        {
            "detail": f"JupyterLab of workspace {id_} does not answer ({type(error).__name__}).",
            "hint": "It may have just ended; reload the execution's page.",
        },
        status_code=504 if isinstance(error, httpx.TimeoutException) else 502,
    )


@router.api_route(ROUTE, methods=METHODS)
async def proxy_http(request: Request, gear: str, number: int, path: str, who: CallerDep) -> Response:
    """Forward one request to the owner's JupyterLab; bodies stream both ways (only HTML pages are read
    whole, to take the token out of them)."""
    base_url, token = await run_in_threadpool(resolve_upstream, who, gear, number)
    headers = upstream_headers(request.headers.items(), base_url, REQUEST_DROPPED)
    headers.append(("authorization", f"token {token}"))
    has_body = "content-length" in request.headers or "transfer-encoding" in request.headers
    query = request.scope.get("query_string", b"")
    target = upstream_path(request.scope.get("raw_path"), gear, number, path)
    url = httpx.URL(base_url).copy_with(raw_path=target.encode("latin-1") + (b"?" + query if query else b""))
    client = _client()
    upstream_request = client.build_request(
        request.method, url, headers=headers, content=request.stream() if has_body else None
    )
    try:
        upstream = await client.send(upstream_request, stream=True)
    except httpx.HTTPError as error:
        return _bad_gateway(execution_id(gear, number), error)
    cookie = _airflow_cookie()
    headers_out = [
        (name.encode("latin-1"), value.encode("latin-1"))
        for name, value in upstream.headers.multi_items()
        if name.lower() not in RESPONSE_DROPPED
        and not (name.lower() == "set-cookie" and value.split("=", 1)[0].strip() == cookie)
    ]
    if request.method != "HEAD" and _is_page(upstream):
        return await _scrubbed(upstream, headers_out, token)
    response = StreamingResponse(
        _body(upstream), status_code=upstream.status_code, background=BackgroundTask(upstream.aclose)
    )
    response.raw_headers = headers_out
    return response


def _is_page(upstream: httpx.Response) -> bool:
    return upstream.headers.get("content-type", "").partition(";")[0].strip().lower() == "text/html"


async def _scrubbed(upstream: httpx.Response, headers: list[tuple[bytes, bytes]], token: str) -> Response:
    """An HTML page, read whole and without the token: JupyterLab writes its server's token into the
    lab page's config (labapp.py ``page_config["token"]``). With ``"token": ""`` the page's scripts rely
    on the session, and the proxy authenticates them anyway. Pages are small; other bodies stream."""
    try:
        body = (await upstream.aread()).replace(token.encode(), b"")  # decoded, so no Content-Encoding
    finally:
        await upstream.aclose()
    response = Response(body, status_code=upstream.status_code)
    response.raw_headers = [
        (name, value)
        for name, value in headers
        if name.lower() not in (b"content-length", b"content-encoding")
    ] + [(b"content-length", str(len(body)).encode())]
    return response


async def _body(upstream: httpx.Response) -> AsyncIterator[bytes]:
    """The upstream body as it arrives, still encoded (a gzip body stays gzip, Content-Length stays true)."""
    try:
        async for chunk in upstream.aiter_raw():
            yield chunk
    finally:
        await upstream.aclose()


# -- WebSocket ------------------------------------------------------------------------------------------------


async def websocket_caller(websocket: WebSocket) -> Caller:
    """The caller of a WebSocket handshake, resolved by Airflow's own ``get_user`` as ``deps.caller`` does.

    ``bearer_scheme`` and ``get_user`` are typed for a Request but read only ``headers``, ``cookies`` and
    ``state``, which a WebSocket has too (both are Starlette HTTPConnections): the bearer JWT wins, else
    the session cookie; HTTPException 401 without credentials, 403 for an invalid token."""
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

    connection = cast(Request, websocket)
    credentials = await bearer_scheme(connection)
    user = await get_user(connection, None, credentials)
    service = await run_in_threadpool(gear_service, connection)
    return Caller(user.get_name(), service, service.access(user.get_name()))


async def _deny(websocket: WebSocket, status: int, detail: str) -> None:
    """Refuse the upgrade with an HTTP status (the ASGI denial extension), else close before accepting."""
    try:
        await websocket.send_denial_response(JSONResponse({"detail": detail}, status_code=status))
    except RuntimeError:  # the server lacks the extension: a close before accept is a 403
        await websocket.close(code=1008, reason=detail[:120])


@router.websocket(ROUTE)
async def proxy_websocket(websocket: WebSocket, gear: str, number: int, path: str) -> None:
    """Relay a WebSocket (kernel channels, terminals, events) to the owner's JupyterLab: text and binary
    frames both ways, the close code of either side passed to the other."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus, WebSocketException

    try:
        who = await websocket_caller(websocket)
    except HTTPException as error:
        await _deny(websocket, error.status_code, str(error.detail))
        return
    if not same_origin(websocket.headers):
        await _deny(websocket, 403, "Cross-origin WebSocket refused.")
        return
    try:
        base_url, token = await run_in_threadpool(resolve_upstream, who, gear, number)
    except NotFoundError as error:
        await _deny(websocket, 404, error.headline)
        return
    target = upstream_path(websocket.scope.get("raw_path"), gear, number, path)
    query = websocket.scope.get("query_string", b"").decode("latin-1")
    url = "ws" + base_url.removeprefix("http") + target + (f"?{query}" if query else "")
    headers = upstream_headers(websocket.headers.items(), base_url, WEBSOCKET_DROPPED)
    headers.append(("Authorization", f"token {token}"))
    subprotocols = [
        p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",") if p.strip()
    ]
    try:
        upstream = await connect(
            url,
            additional_headers=headers,
            subprotocols=subprotocols or None,  # type: ignore[arg-type]
            max_size=WEBSOCKET_MAX_MESSAGE,
            open_timeout=OPEN_TIMEOUT,
            user_agent_header=None,
        )
    except InvalidStatus as error:
        await _deny(websocket, error.response.status_code, "JupyterLab refused the WebSocket.")
        return
    except (OSError, TimeoutError, WebSocketException) as error:
        await _deny(websocket, 502, f"JupyterLab does not answer ({type(error).__name__}).")
        return
    await websocket.accept(subprotocol=upstream.subprotocol)
    await _relay(websocket, upstream)


async def _relay(client: WebSocket, upstream: ClientConnection) -> None:
    """Pump frames both ways until one side closes, then close the other with the same code."""
    from websockets.exceptions import ConnectionClosed

    tasks = [
        asyncio.create_task(_client_to_upstream(client, upstream)),
        asyncio.create_task(_upstream_to_client(upstream, client)),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(
                asyncio.CancelledError, ConnectionClosed, WebSocketDisconnect, RuntimeError
            ):
                await task
        await upstream.close()


async def _client_to_upstream(client: WebSocket, upstream: ClientConnection) -> None:
    while True:
        message = await client.receive()
        if message["type"] == "websocket.disconnect":
            code = int(message.get("code") or 1000)
            await upstream.close(code=_sendable(code), reason=str(message.get("reason") or ""))
            return
        if message.get("bytes") is not None:
            await upstream.send(message["bytes"])
        elif message.get("text") is not None:
            await upstream.send(message["text"])


async def _upstream_to_client(upstream: ClientConnection, client: WebSocket) -> None:
    from websockets.exceptions import ConnectionClosed

    try:
        async for frame in upstream:
            if isinstance(frame, bytes):
                await client.send_bytes(frame)
            else:
                await client.send_text(frame)
    except ConnectionClosed:
        pass
    code = _sendable(upstream.close_code if upstream.close_code is not None else 1006)
    with contextlib.suppress(RuntimeError, WebSocketDisconnect, OSError):
        await client.close(code=code, reason=upstream.close_reason or "")


def _sendable(code: int) -> int:
    """Close codes a peer may send: 1005/1006/1015 only describe what happened, so they become 1000/1011."""
    if code == 1005:
        return 1000
    if code in (1006, 1015) or not (1000 <= code <= 4999):
        return 1011
    return code
