"""JupyterLab through the web UI's proxy, real everything: a workspace task run by `airflow dags test`
(GearWorkspaceOperator, real Docker, real JupyterLab) and a real `airflow api-server` (SimpleAuthManager
users, the browser's session cookie). The owner opens the lab page, starts a kernel over REST and runs a
cell over the kernel's WebSocket (JSON text frames and the binary v1 protocol); another user gets 404, no
login 401; the token shows up in no XCom, record, task log or proxied response.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hyperai_provider.core.gears import GearService
from hyperai_provider.core.settings import HyperAISettings
from hyperai_provider.links import ExecutionLink, JupyterLabLink
from hyperai_provider.models import ExecutionRecord, ExecutionState
from hyperai_provider.plugins.routes.workspaces import upstream_headers, upstream_path
from tests.conftest import (
    ROOT,
    airflow_api_server,
    airflow_jwt,
    managed_names,
    wait_for_state,
)
from tests.system.dagtest import DagRunResult, airflow_dags_test

DAG_ID = "hyperai_workspace_proxy"
GEAR = "proxy-alice"
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw"}
DAG_FILE = f'''
from airflow.sdk import DAG
from hyperai_provider.operators import GearWorkspaceOperator

with DAG("{DAG_ID}", schedule=None, catchup=False):
    GearWorkspaceOperator(task_id="develop", gear="{GEAR}", image="jupyter", idle_timeout=None, poll_interval=1)
'''
ARTIFACTS = ROOT / "artifacts" / "workspace_proxy"
V1_PROTOCOL = "v1.kernel.websocket.jupyter.org"
BIG_FILE_MIB = 64


# -- pure helpers (no Docker) -----------------------------------------------------------------------------


def test_the_upstream_path_keeps_the_clients_encoding() -> None:
    raw = b"/hyperai/workspaces/g.1/3/api/contents/a%2Fb%20c.ipynb"
    assert upstream_path(raw, "g.1", 3, "ignored") == "/hyperai/workspaces/g.1/3/api/contents/a%2Fb%20c.ipynb"
    # behind an outer prefix the container still sees its own base URL
    assert (
        upstream_path(b"/outer" + raw, "g.1", 3, "x")
        == "/hyperai/workspaces/g.1/3/api/contents/a%2Fb%20c.ipynb"
    )
    assert upstream_path(None, "g", 1, "lab/tree/a b") == "/hyperai/workspaces/g/1/lab/tree/a%20b"


def test_airflow_credentials_stay_with_airflow_and_the_request_looks_same_origin() -> None:
    headers = upstream_headers(
        [
            ("Host", "airflow.example:8080"),
            ("Authorization", "Bearer airflow-jwt"),
            ("Cookie", "_token=airflow-jwt; _xsrf=2|abc; username-x=y"),
            ("Origin", "https://airflow.example:8080"),
            ("Referer", "https://airflow.example:8080/hyperai/workspaces/g/1/lab?x=1"),
            ("Connection", "keep-alive"),
            ("X-XSRFToken", "2|abc"),
        ],
        "http://127.0.0.1:49153",
        frozenset({"host", "authorization", "cookie", "origin", "referer", "connection"}),
    )
    assert dict(headers) == {
        "cookie": "_xsrf=2|abc; username-x=y",
        "origin": "http://127.0.0.1:49153",
        "referer": "http://127.0.0.1:49153/hyperai/workspaces/g/1/lab?x=1",
        "X-XSRFToken": "2|abc",
    }


# -- the real thing ------------------------------------------------------------------------------------------


@pytest.fixture
def proxy_env(tmp_path: Path, airflow_home: Path, jupyter_image: str) -> Iterator[dict[str, Any]]:
    storage, dags = tmp_path / "storage", tmp_path / "dags"
    storage.mkdir()
    dags.mkdir()
    (dags / "proxy_dag.py").write_text(DAG_FILE)
    passwords = tmp_path / "passwords.json"
    passwords.write_text(json.dumps(PASSWORDS))
    env = {
        "HYPERAI_STORAGE_ROOT": str(storage),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "alice:admin,bob:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__API_AUTH__JWT_SECRET": "hyperai-workspace-proxy-test-" + "0" * 64,
    }
    service = GearService(HyperAISettings(storage_root=storage, user="alice"))
    yield {
        "env": env,
        "storage": storage,
        "dags": dags,
        "service": service,
        "home": airflow_home,
        "tmp": tmp_path,
    }
    try:
        for record in service.executions(GEAR):
            if not record.closed:
                service.stop(record.id, "test cleanup")
    finally:
        for name in managed_names(storage):
            service.runner.remove(name)
        service.backend.close()


def link_value(airflow_home: Path) -> object:
    return xcom_value(airflow_home, JupyterLabLink.xcom_key)


def xcom_value(airflow_home: Path, key: str) -> object:
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        row = db.execute(
            "SELECT value FROM xcom WHERE dag_id = ? AND task_id = 'develop' AND key = ? "
            "ORDER BY timestamp DESC LIMIT 1",
            (DAG_ID, key),
        ).fetchone()
    return None if row is None else json.loads(row[0])


def all_xcoms(airflow_home: Path) -> str:
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        rows = db.execute("SELECT key, value FROM xcom WHERE dag_id = ?", (DAG_ID,)).fetchall()
    return json.dumps([[key, value if isinstance(value, str) else repr(value)] for key, value in rows])


class Bodies:
    """Every proxied response body seen, to check the token is in none."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []

    def __call__(self, response: httpx.Response) -> httpx.Response:
        self.seen.append(response.content)
        return response


def execute_request(code: str) -> dict[str, Any]:
    return {
        "header": {
            "msg_id": uuid.uuid4().hex,
            "session": uuid.uuid4().hex,
            "username": "alice",
            "msg_type": "execute_request",
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "content": {
            "code": code,
            "silent": False,
            "store_history": False,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        },
        "channel": "shell",
        "buffers": [],
    }


def to_v1(message: dict[str, Any]) -> bytes:
    """Jupyter's binary kernel WebSocket protocol v1 (jupyter_server serialize_msg_to_ws_v1)."""
    parts = [json.dumps(message[key]).encode() for key in ("header", "parent_header", "metadata", "content")]
    channel = message["channel"].encode()
    offsets = [8 * (1 + 1 + len(parts) + 1)]
    offsets.append(offsets[-1] + len(channel))
    for part in parts:
        offsets.append(offsets[-1] + len(part))
    head = len(offsets).to_bytes(8, "little") + b"".join(o.to_bytes(8, "little") for o in offsets)
    return head + channel + b"".join(parts)


def from_v1(frame: bytes) -> dict[str, Any]:
    count = int.from_bytes(frame[:8], "little")
    offsets = [int.from_bytes(frame[8 * (i + 1) : 8 * (i + 2)], "little") for i in range(count)]
    parts = [frame[offsets[i] : offsets[i + 1]] for i in range(1, count - 1)]
    header, parent, metadata, content = (json.loads(part) for part in parts[:4])
    return {
        "channel": frame[offsets[0] : offsets[1]].decode(),
        "header": header,
        "parent_header": parent,
        "msg_type": header["msg_type"],
        "metadata": metadata,
        "content": content,
    }


async def run_cell(
    url: str, headers: dict[str, str], code: str, binary: bool
) -> tuple[str, str | None, list[str]]:
    """Run one cell over a kernel's channels; return (stdout, the subprotocol, frame kinds seen)."""
    from websockets.asyncio.client import connect

    request = execute_request(code)
    msg_id = request["header"]["msg_id"]
    kinds: list[str] = []
    out = ""
    async with connect(
        url,
        additional_headers=headers,
        subprotocols=[V1_PROTOCOL] if binary else None,
        open_timeout=120,  # type: ignore[list-item]
    ) as socket_:
        await socket_.send(to_v1(request) if binary else json.dumps(request))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            frame = await asyncio.wait_for(socket_.recv(), timeout=60)
            kinds.append("bytes" if isinstance(frame, bytes) else "text")
            message = from_v1(frame) if isinstance(frame, bytes) else json.loads(frame)
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            msg_type = message.get("msg_type") or message["header"]["msg_type"]
            if msg_type == "stream":
                out += message["content"]["text"]
            if msg_type == "status" and message["content"]["execution_state"] == "idle":
                return out, socket_.subprotocol, kinds
    raise AssertionError(f"no idle status for {code!r}; saw {out!r}")


async def websocket_status(url: str, headers: dict[str, str]) -> int:
    """The HTTP status a WebSocket handshake is refused with (101 if accepted)."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    try:
        async with connect(url, additional_headers=headers, open_timeout=120):
            return 101
    except InvalidStatus as error:
        return int(error.response.status_code)


async def upstream_closes_reach_the_client(url: str, headers: dict[str, str], first: str) -> int | None:
    """Open a socket, send ``first`` (which makes JupyterLab end it), return the close code the client gets."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    async with connect(url, additional_headers=headers, open_timeout=120) as socket_:
        await socket_.send(first)
        try:
            while True:
                await asyncio.wait_for(socket_.recv(), timeout=30)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None


def median_ms(get: Any, n: int = 20) -> float:
    times = []
    for _ in range(n):
        began = time.perf_counter()
        response = get()
        times.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200, response.text
    return statistics.median(times)


@pytest.mark.docker
@pytest.mark.airflow
@pytest.mark.slow
def test_the_owner_uses_jupyterlab_through_the_proxy_and_the_token_stays_on_the_server(
    proxy_env: dict[str, Any],
) -> None:
    env, storage, home = proxy_env["env"], proxy_env["storage"], proxy_env["home"]
    service: GearService = proxy_env["service"]
    results: list[DagRunResult] = []
    runner = threading.Thread(
        target=lambda: results.append(
            airflow_dags_test(DAG_ID, home, proxy_env["dags"], storage, env={**env, "HYPERAI_USER": "alice"})
        )
    )
    log = proxy_env["tmp"] / "api-server.log"
    bodies = Bodies()
    figures: dict[str, Any] = {}
    with airflow_api_server(env, log) as url:
        runner.start()
        try:
            record: ExecutionRecord = wait_for_state(
                service,
                f"{GEAR}/1",
                ExecutionState.RUNNING,
                180,
                ready=lambda running: (
                    running.workspace is not None and running.workspace.host_port is not None
                ),
                alive=runner.is_alive,
                details=lambda: results and results[0].output[-4000:],
            )
            token = service.workspaces.token(record)
            assert token
            deadline = time.monotonic() + 120
            while link_value(home) is None:  # pushed once JupyterLab answers
                assert runner.is_alive() and time.monotonic() < deadline, (
                    results and results[0].output[-4000:]
                )
                time.sleep(0.2)
            path = f"/hyperai/workspaces/{GEAR}/1/lab"
            assert link_value(home) == path  # "Open JupyterLab": the proxy, no token

            alice_jwt, bob_jwt = airflow_jwt(url, "alice", "alice-pw"), airflow_jwt(url, "bob", "bob-pw")
            base = f"{url}/hyperai/workspaces/{GEAR}/1"
            ws_base = base.replace("http://", "ws://")
            # The browser: Airflow's session cookie, nothing else.
            with httpx.Client(cookies={"_token": alice_jwt}, timeout=60) as alice:
                lab = bodies(alice.get(url + path))
                assert lab.status_code == 200 and "jupyter-config-data" in lab.text, lab.text[:500]
                assert (
                    '"token": ""' in lab.text
                )  # JupyterLab writes its token into the page; the proxy takes it out
                assert "default-src 'none'" not in lab.headers.get("content-security-policy", "")
                assert "_xsrf" in alice.cookies  # Jupyter's XSRF cookie reaches the browser...
                xsrf = {
                    "X-XSRFToken": alice.cookies["_xsrf"],
                    "Origin": url,
                }  # ...and comes back as JupyterLab does
                kernel = bodies(alice.post(base + "/api/kernels", json={"name": "python3"}, headers=xsrf))
                assert kernel.status_code == 201, kernel.text
                kernel_id = kernel.json()["id"]
                channels = f"{ws_base}/api/kernels/{kernel_id}/channels"
                browser = {"Cookie": f"_token={alice_jwt}", "Origin": url}
                out, protocol, kinds = asyncio.run(run_cell(channels, browser, "print(6*7)", binary=False))
                assert out.strip() == "42" and protocol is None and set(kinds) == {"text"}
                big = f"open('big.bin','wb').write(bytes(range(256)) * (4096 * {BIG_FILE_MIB}))"
                out, protocol, kinds = asyncio.run(run_cell(channels, browser, f"print({big})", binary=True))
                assert (
                    out.strip() == str(BIG_FILE_MIB << 20)
                    and protocol == V1_PROTOCOL
                    and set(kinds) == {"bytes"}
                )
                # close propagated client -> upstream: Jupyter counts no connection left
                connections = alice.get(f"{base}/api/kernels/{kernel_id}").json()["connections"]
                deadline = time.monotonic() + 10
                while connections and time.monotonic() < deadline:
                    time.sleep(0.2)
                    connections = alice.get(f"{base}/api/kernels/{kernel_id}").json()["connections"]
                assert connections == 0

                # An upload (8 MiB of JSON through the contents API) goes through whole.
                payload = bytes(range(256)) * (4096 * 8)
                saved = alice.put(
                    f"{base}/api/contents/up.bin",
                    json={"type": "file", "format": "base64", "content": base64.b64encode(payload).decode()},
                    headers=xsrf,
                )
                assert bodies(saved).status_code in (200, 201), saved.text
                assert alice.get(f"{base}/files/up.bin").content == payload

                # A large download streams: headers and first bytes long before the end, Content-Length kept.
                began = time.perf_counter()
                with alice.stream(
                    "GET", f"{base}/files/big.bin", headers={"Accept-Encoding": "identity"}
                ) as download:
                    assert download.status_code == 200
                    assert int(download.headers["content-length"]) == BIG_FILE_MIB << 20
                    chunks = download.iter_raw()
                    first = next(chunks)
                    first_at = time.perf_counter() - began
                    total = len(first) + sum(len(chunk) for chunk in chunks)
                total_s = time.perf_counter() - began
                assert total == BIG_FILE_MIB << 20 and first[:4] == bytes(range(4))
                figures["download"] = {
                    "MiB": BIG_FILE_MIB,
                    "first_byte_s": round(first_at, 4),
                    "total_s": round(total_s, 3),
                }
                assert first_at < total_s / 2, figures  # a buffering proxy answers only once it has it all

                # A close from upstream reaches the client: a terminal whose shell exits is closed by Jupyter.
                terminal = bodies(alice.post(base + "/api/terminals", headers=xsrf))
                assert terminal.status_code == 200, terminal.text
                terminal_socket = f"{ws_base}/terminals/websocket/{terminal.json()['name']}"
                code = asyncio.run(
                    upstream_closes_reach_the_client(
                        terminal_socket, browser, json.dumps(["stdin", "exit\r"])
                    )
                )
                assert code is not None and code not in (1006, 1011), code
                assert alice.delete(f"{base}/api/kernels/{kernel_id}", headers=xsrf).status_code == 204

                # Latency: Jupyter's status API through the proxy against the published port, same run.
                direct_url = (
                    service.workspaces.upstream(service.get(record.id))[0]
                    + f"/hyperai/workspaces/{GEAR}/1/api/status"
                )  # type: ignore[index]
                with httpx.Client(timeout=30) as direct:
                    figures["status_ms"] = {
                        "direct": round(
                            median_ms(
                                lambda: direct.get(direct_url, headers={"Authorization": f"token {token}"})
                            ),
                            2,
                        ),
                        "proxied": round(median_ms(lambda: alice.get(base + "/api/status")), 2),
                        # an Airflow-authenticated HyperAI route that reads the same record: the floor
                        "hyperai_api": round(
                            median_ms(lambda: alice.get(f"{url}/hyperai/api/executions/{GEAR}/1")), 2
                        ),
                    }
                    figures["status_ms"]["direct_again"] = round(
                        median_ms(
                            lambda: direct.get(direct_url, headers={"Authorization": f"token {token}"})
                        ),
                        2,
                    )

                # Cross-site: another origin may neither act nor open a socket with the owner's cookie.
                evil = {"Origin": "https://evil.example"}
                assert (
                    alice.post(base + "/api/kernels", json={"name": "python3"}, headers=evil).status_code
                    == 403
                )
                assert (
                    asyncio.run(websocket_status(f"{ws_base}/api/events/subscribe", {**browser, **evil}))
                    == 403
                )

            # Bearer JWT (API clients) works as the cookie does.
            bearer = httpx.get(
                base + "/api/status", headers={"Authorization": f"Bearer {alice_jwt}"}, timeout=30
            )
            assert bodies(bearer).status_code == 200

            # Another user: the workspace does not exist; no login: 401; a forged token: 403.
            with httpx.Client(cookies={"_token": bob_jwt}, timeout=30) as bob:
                for suffix in ("/lab", "/api/status", "/api/kernels"):
                    refused = bodies(bob.get(base + suffix))
                    assert refused.status_code == 404 and "does not exist" in refused.text, (
                        suffix,
                        refused.text,
                    )
                assert bob.post(base + "/api/kernels", json={"name": "python3"}).status_code == 404
            events = f"{ws_base}/api/events/subscribe"
            assert asyncio.run(websocket_status(events, {"Cookie": f"_token={bob_jwt}"})) == 404
            assert asyncio.run(websocket_status(events, {"Cookie": f"_token={alice_jwt}"})) == 101
            for status, headers in ((401, {}), (403, {"Authorization": "Bearer forged"})):
                assert bodies(httpx.get(base + "/lab", headers=headers, timeout=30)).status_code == status
                assert asyncio.run(websocket_status(events, headers)) == status
            assert (
                httpx.get(base.replace(GEAR, "nope") + "/lab", cookies={"_token": alice_jwt}).status_code
                == 404
            )

            # The owner shuts JupyterLab down through the proxy (File > Shut Down); the task ends.
            with httpx.Client(cookies={"_token": alice_jwt}, timeout=30) as alice:
                assert alice.post(base + "/api/shutdown", headers={"Origin": url}).status_code in (200, 204)
                runner.join(timeout=240)
                assert not runner.is_alive()
                gone = bodies(alice.get(url + path))
                assert gone.status_code == 404 and "has ended" in gone.text
        finally:  # never leave the DAG run waiting for a user
            if runner.is_alive():
                for leftover in service.executions(GEAR):
                    if not leftover.closed:
                        service.stop(leftover.id, "test failed")
                runner.join(timeout=120)
    result = results[0]
    assert result.returncode == 0, result.output[-4000:]
    assert result.task_states(DAG_ID) == {"develop": "success"}
    assert link_value(home) == ""  # the link goes away with the workspace
    # A workspace task's process ends twice (deferred, then resumed): the execution link survives both.
    assert xcom_value(home, ExecutionLink.xcom_key) == f"/hyperai/executions/{GEAR}/1"
    assert "JupyterLab is ready" in result.output and path in result.output

    closed = service.get(record.id)
    assert closed.state is ExecutionState.SUCCEEDED and closed.ended_because == "shut down from JupyterLab"
    places = {
        "XCom": all_xcoms(home),
        "record JSON": closed.model_dump_json(),
        "task log (dags test output)": result.output,
        "execution log": (storage / "gears" / GEAR / "1" / "output.log").read_text(),
        "api-server log": log.read_text(),
        "Airflow task logs": "\n".join(
            file.read_text(errors="replace") for file in (home / "logs").rglob("*") if file.is_file()
        ),
        "store files": "\n".join(
            file.read_bytes().decode("latin-1") for file in storage.glob("*.db*") if file.is_file()
        ),
        "proxied responses": b"\n".join(bodies.seen).decode("latin-1"),
    }
    assert places["store files"] and places["XCom"] and len(bodies.seen) >= 8
    leaked = [
        f"{where}: ...{text[max(0, text.index(token) - 300) : text.index(token) + 60]}..."
        for where, text in places.items()
        if token in text
    ]
    assert not leaked, f"the token is in: {leaked}"
    assert not managed_names(storage), "the workspace's container is left"

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "figures.json").write_text(json.dumps(figures, indent=2))
    print(f"\nworkspace proxy figures: {json.dumps(figures)}")
