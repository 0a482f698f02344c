"""Shared fixtures. Airflow is pointed at a throw-away home before anything imports it.

Tests that need Docker use the ``docker_engine`` fixture: outside CI they skip (and say why) when no
engine answers; with CI=true they fail loudly instead.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any, NoReturn

import pytest

_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="hyperai-airflow-home-"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")
os.environ["HYPERAI_STORAGE_ROOT"] = str(_AIRFLOW_HOME / "hyperai")

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
BASE_IMAGE = "hyperai/base:bookworm-1"
JUPYTER_IMAGE = "hyperai/jupyter:bookworm-1"
PYTORCH_IMAGE = "hyperai/pytorch:2.14-bookworm-1"
TENSORFLOW_IMAGE = "hyperai/tensorflow:2.21-bookworm-1"


def _need(reason: str) -> NoReturn:
    """The one guard for a missing prerequisite: skip outside CI, fail under CI=true."""
    if IN_CI:
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def root_user() -> None:
    """Tests that need root (whiteouts, trusted.* xattrs); use through ``needs_root``."""
    if os.geteuid() != 0:
        _need("the test needs root (whiteouts and trusted.* xattrs)")


needs_root = pytest.mark.usefixtures("root_user")


@pytest.fixture(scope="session")
def docker_engine():  # type: ignore[no-untyped-def]
    """The Docker client of a reachable engine."""
    from hyperai_provider.core.runner import DockerRunner
    from hyperai_provider.exceptions import EngineError

    try:
        return DockerRunner().client
    except EngineError as error:
        _need(f"no Docker engine answers ({error.headline}); start one with scripts/setup_docker.sh")


def _image(client, tag: str) -> str:  # type: ignore[no-untyped-def]
    import docker

    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        _need(f"image {tag} is missing; build it with scripts/build_images.sh")
    return tag


@pytest.fixture(scope="session")
def base_image(docker_engine) -> str:  # type: ignore[no-untyped-def]
    return _image(docker_engine, BASE_IMAGE)


@pytest.fixture(scope="session")
def jupyter_image(docker_engine) -> str:  # type: ignore[no-untyped-def]
    return _image(docker_engine, JUPYTER_IMAGE)


@pytest.fixture(scope="session")
def pytorch_image(docker_engine) -> str:  # type: ignore[no-untyped-def]
    return _image(docker_engine, PYTORCH_IMAGE)


@pytest.fixture(scope="session")
def tensorflow_image(docker_engine) -> str:  # type: ignore[no-untyped-def]
    return _image(docker_engine, TENSORFLOW_IMAGE)


@pytest.fixture
def storage_root(tmp_path: Path) -> Path:
    root = tmp_path / "storage"
    root.mkdir()
    return root


@pytest.fixture
def service(storage_root: Path):  # type: ignore[no-untyped-def]
    """A gear service on a fresh storage root (SQLite store inside it)."""
    from hyperai_provider.core.gears import GearService
    from hyperai_provider.core.settings import HyperAISettings

    svc = GearService(HyperAISettings(storage_root=storage_root, user="alice"))
    yield svc
    svc.backend.close()


@pytest.fixture
def docker_service(service, docker_engine, base_image):  # type: ignore[no-untyped-def]
    """A gear service whose tests need the engine and the base image."""
    return service


@pytest.fixture(scope="session")
def airflow_home() -> Iterator[Path]:
    """An Airflow home with a migrated SQLite database (for `airflow dags test`)."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        env={**os.environ, "AIRFLOW_HOME": str(_AIRFLOW_HOME)},
    )
    yield _AIRFLOW_HOME


def run_cli(
    *args: str, storage_root: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the `hyperai` CLI in a subprocess, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "hyperai_provider.cli", "--storage-root", str(storage_root), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def wait_for_state(
    service: Any,
    execution_id: str,
    states: Any,
    timeout: float = 60.0,
    *,
    ready: Callable[[Any], bool] | None = None,
    alive: Callable[[], bool] | None = None,
    details: Callable[[], object] | None = None,
) -> Any:
    """Poll ``service.get(execution_id)`` until its state is one of ``states`` (and ``ready(record)``).

    Fails the test (with the last state seen) on timeout, when the execution closes in a state not asked
    for, or when ``alive()`` says the process running it has ended. ``details()`` adds to the message.
    """
    from hyperai_provider.models import CLOSED_STATES, ExecutionState

    wanted = {states} if isinstance(states, ExecutionState) else set(states)
    names = "/".join(sorted(state.value for state in wanted))
    deadline = time.monotonic() + timeout

    def fail(why: str) -> NoReturn:
        extra = f"\n{details()}" if details is not None else ""
        pytest.fail(f"{execution_id} never reached {names}: {why}{extra}", pytrace=False)

    last = "no record yet"
    while True:
        gone = alive is not None and not alive()  # asked first, so the read below sees its last state
        try:
            record = service.get(execution_id)
        except Exception as error:  # not created yet (or another process is creating the store)
            last = f"no record yet ({type(error).__name__}: {error})"
        else:
            last = f"last state {record.state.value}"
            if record.state in wanted and (ready is None or ready(record)):
                return record
            if record.state in CLOSED_STATES and wanted.isdisjoint(CLOSED_STATES):
                fail(f"it closed as {record.state.value} ({record.failure_reason})")
        if gone:
            fail(f"the process running it ended ({last})")
        if time.monotonic() > deadline:
            fail(f"timed out after {timeout:g} s ({last})")
        time.sleep(0.1)


def managed_names(storage_root: Path | None = None) -> set[str]:
    """Names of the containers this provider made (of one storage root: other tests share the engine)."""
    from hyperai_provider.core.runner import DockerRunner

    root = str(storage_root) if storage_root else None
    return {container.name for container in DockerRunner().managed_containers(root)}


def write_notebook(path: Path, *sources: str) -> Path:
    """A notebook with a markdown title and one code cell per source."""
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_markdown_cell("# Training")] + [
        nbformat.v4.new_code_cell(source) for source in sources
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return path


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def airflow_api_server(env: dict[str, str], log_path: Path, timeout: float = 90) -> Iterator[str]:
    """A real `airflow api-server` on 127.0.0.1 (its own process group, stopped on exit); yields its URL."""
    import httpx

    port = free_port()
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "airflow", "api-server", "--port", str(port), "--host", "127.0.0.1"],
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{url}/api/v2/monitor/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"api-server did not answer; see {log_path}", pytrace=False)
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def airflow_jwt(url: str, user: str, password: str) -> str:
    """A JWT from the api-server's ``POST /auth/token`` (SimpleAuthManager); the browser's session cookie
    (``_token``) carries the same kind of token."""
    import httpx

    response = httpx.post(f"{url}/auth/token", json={"username": user, "password": password}, timeout=30)
    assert response.status_code == 201, response.text
    return str(response.json()["access_token"])


class Inbox:
    """A real local SMTP server's received messages (aiosmtpd)."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]
        self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 OK"


@pytest.fixture
def inbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[Inbox]:
    """A real SMTP server on a free local port, named by ``HYPERAI_SMTP_*`` for the test's duration."""
    from aiosmtpd.controller import Controller

    handler = Inbox()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("HYPERAI_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("HYPERAI_SMTP_PORT", str(port))
    monkeypatch.setenv("HYPERAI_SMTP_FROM", "hyperai@example.test")
    yield handler
    controller.stop()


class SecondEngine:
    """A dockerd of the test's own, never the shared one: its own data root, exec root (and containerd),
    socket and pid file under a short folder in /tmp, in its own network namespace (``unshare --net``)
    with no bridge and no iptables rules, so starting and stopping it touches nothing the shared engine
    uses (``--bridge=none`` alone deletes the host's docker0 bridge when run in the host's namespace)."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="hai-dockerd-", dir="/tmp"))  # unix sockets: < 108 chars
        self.socket = self.folder / "docker.sock"
        self.host = f"unix://{self.socket}"
        self.log = self.folder / "dockerd.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> None:
        """Start dockerd and wait until it answers; fails the test (with its log's tail) if it does not."""
        import docker

        command = [
            "unshare", "--net", "dockerd",
            "--data-root", str(self.folder / "data"),
            "--exec-root", str(self.folder / "exec"),
            "--pidfile", str(self.folder / "dockerd.pid"),
            "-H", self.host,
            "--bridge=none", "--iptables=false", "--ip-masq=false",
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            try:
                docker.DockerClient(base_url=self.host, timeout=5).ping()
                return
            except Exception:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    tail = self.log.read_text(errors="replace")[-2000:]
                    status = self.process.poll()
                    _need(f"a second Docker engine could not start (dockerd: {status}):\n{tail}")
                time.sleep(0.2)

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM to dockerd (it stops its containers and its containerd), then wait for it to exit."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def client(self):  # type: ignore[no-untyped-def]
        import docker

        return docker.DockerClient(base_url=self.host, timeout=60)

    def load(self, image: str) -> None:
        """Copy an image from the shared engine into this one (docker save | docker load)."""
        saved = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
        loaded = subprocess.run(["docker", "-H", self.host, "load"], stdin=saved.stdout, capture_output=True)
        assert saved.stdout is not None
        saved.stdout.close()
        assert saved.wait(timeout=300) == 0 and loaded.returncode == 0, loaded.stderr.decode(errors="replace")

    def destroy(self) -> None:
        """Remove its containers, stop it, and delete its folder (whatever state the test left it in)."""
        import shutil

        if self.running:
            with contextlib.suppress(Exception):
                client = self.client()
                for container in client.containers.list(all=True):
                    container.remove(force=True)
        self.stop()
        for pid in os.listdir("/proc"):  # its shims, should a SIGKILL have left them: only ours, by pid
            with contextlib.suppress(OSError):
                if pid.isdigit() and str(self.folder).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(int(pid), signal.SIGKILL)
        with open("/proc/mounts") as mounts:
            below = [line.split()[1] for line in mounts if line.split()[1].startswith(str(self.folder))]
        for mount in sorted(below, key=len, reverse=True):
            subprocess.run(["umount", "-l", mount], capture_output=True)
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture
def second_engine(docker_engine) -> Iterator[SecondEngine]:  # type: ignore[no-untyped-def]
    """A started dockerd of the test's own (see :class:`SecondEngine`); destroyed after the test whatever
    happens. Needs root, ``dockerd`` and ``unshare``: otherwise skipped (failed under CI=true)."""
    import shutil

    if os.geteuid() != 0:
        _need("a second Docker engine needs root")
    missing = [tool for tool in ("dockerd", "unshare", "docker") if shutil.which(tool) is None]
    if missing:
        _need(f"a second Docker engine needs {', '.join(missing)} on PATH")
    engine = SecondEngine()
    try:
        engine.start()
        yield engine
    finally:
        engine.destroy()


def headless_chromium() -> Any:
    """A headless Debian Chromium driven by chromedriver (selenium); a missing browser goes through the CI
    guard (scripts/install_browser.sh installs it)."""
    import shutil

    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        _need("chromium/chromedriver missing; run scripts/install_browser.sh")
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=webdriver.ChromeService("/usr/bin/chromedriver"))
