"""The HyperAI pages inside Airflow: real auth (SimpleAuthManager users, JWT), real executions (Docker).

API and safety checks go through Airflow's own FastAPI app in-process; the browser test drives a real
``airflow api-server`` with headless Debian Chromium (scripts/install_browser.sh installs it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hyperai_provider.core.gears import GearService
from hyperai_provider.core.settings import HyperAISettings
from hyperai_provider.models import AirflowContext, Visibility
from hyperai_provider.models.spec import ExecutionSpec
from tests.conftest import airflow_api_server, headless_chromium

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "web_ui"
DAG_ID = "webui_continue"
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw"}
DAG_FILE = f'''
from airflow.sdk import DAG
from hyperai_provider.operators import GearTaskOperator

with DAG("{DAG_ID}", schedule=None, catchup=False):
    GearTaskOperator(task_id="train", gear="webui-alice", image="hyperai/base:bookworm-1", command="ls")
'''
COMMAND = (
    "mkdir -p sub && echo hello > sub/hello.txt"
    " && printf '# Results\\n\\n<script>alert(1)</script> **ok** [x](javascript:alert(1))\\n' > README.md"
    " && ln -s /etc/passwd leak && ln -s / rootlink && echo '<h1>raw</h1>' > page.html"
)


@pytest.fixture(scope="module")
def web(
    tmp_path_factory: pytest.TempPathFactory, docker_engine: Any, base_image: str
) -> Iterator[dict[str, Any]]:
    """A storage root with alice's public and bob's private gear, a DAG known to Airflow, and users."""
    work = tmp_path_factory.mktemp("webui")
    storage, dags = work / "storage", work / "dags"
    storage.mkdir()
    dags.mkdir()
    (dags / "webui_dag.py").write_text(DAG_FILE)
    passwords = work / "passwords.json"
    passwords.write_text(json.dumps(PASSWORDS))
    env = {
        "HYPERAI_STORAGE_ROOT": str(storage),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "alice:user,bob:user",  # admins would read every gear
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # One secret for the in-process app and the api-server, whatever order the tests run in.
        "AIRFLOW__API_AUTH__JWT_SECRET": "hyperai-web-ui-test-secret-" + "0" * 64,
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
        subprocess.run(
            [sys.executable, "-m", "airflow", "dags", "reserialize"], check=True, capture_output=True
        )
        service = GearService(HyperAISettings(storage_root=storage, user="alice"))
        context = AirflowContext(dag_id=DAG_ID, task_id="train", run_id="manual__webui")
        spec = ExecutionSpec(
            gear="webui-alice", image=base_image, command=COMMAND, airflow=context, parameters={"lr": 0.1}
        )
        record = service.run(spec, on_line=lambda _: None)
        service.access("alice").set_visibility("webui-alice", Visibility.PUBLIC)
        service.store.ensure_gear("webui-bob", "bob")
        yield {"env": env, "execution": record.id, "storage": storage, "service": service}
        service.store.dispose()


@pytest.fixture(scope="module")
def client(web: dict[str, Any]) -> Iterator[Any]:
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    with TestClient(create_app()) as test_client:
        yield test_client


def token(client: Any, user: str) -> dict[str, str]:
    response = client.post("/auth/token", json={"username": user, "password": PASSWORDS[user]})
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.mark.docker
@pytest.mark.airflow
def test_unauthenticated_requests_are_refused(client: Any, web: dict[str, Any]) -> None:
    for path in ["/hyperai/", "/hyperai/api/gears", f"/hyperai/executions/{web['execution']}"]:
        assert client.get(path).status_code == 401, path
        assert client.get(path, headers={"Authorization": "Bearer forged"}).status_code == 403, path
    assert client.post(f"/hyperai/api/executions/{web['execution']}/stop").status_code == 401


@pytest.mark.docker
@pytest.mark.airflow
def test_pages_and_api_show_gears_history_and_execution(client: Any, web: dict[str, Any]) -> None:
    alice = token(client, "alice")
    gears = {g["name"]: g for g in client.get("/hyperai/api/gears", headers=alice).json()}
    assert gears["webui-alice"]["owner"] == "alice" and gears["webui-alice"]["executions"] == 1
    assert "webui-bob" not in gears
    page = client.get("/hyperai/", headers=alice)
    assert page.status_code == 200 and "default-src 'none'" in page.headers["content-security-policy"]
    history = client.get("/hyperai/gears/webui-alice", headers=alice).text
    assert web["execution"] in history and "succeeded" in history
    execution = client.get(f"/hyperai/executions/{web['execution']}", headers=alice).text
    assert "<script>" not in execution and "&lt;script&gt;alert(1)&lt;/script&gt;" in execution
    assert "<strong>ok</strong>" in execution and "javascript:" not in execution.split('id="readme"')[1]
    assert f"/dags/{DAG_ID}/runs/manual__webui/tasks/train" in execution and "lr" in execution
    hello = client.get(f"/hyperai/executions/{web['execution']}/files/sub/hello.txt", headers=alice)
    assert "hello" in hello.text
    raw = client.get(f"/hyperai/executions/{web['execution']}/files/page.html?download=1", headers=alice)
    assert (
        raw.headers["content-type"] == "application/octet-stream"
        and "attachment" in raw.headers["content-disposition"]
    )
    archive = client.get(f"/hyperai/executions/{web['execution']}/archive.tar.gz", headers=alice)
    assert archive.status_code == 200 and archive.content[:2] == b"\x1f\x8b"


@pytest.mark.docker
@pytest.mark.airflow
@pytest.mark.parametrize(
    ("path", "status"),
    [
        pytest.param("../../store.db", (404, 422), id="dot-dot-normalised-by-the-client"),
        pytest.param("%2e%2e/%2e%2e/store.db", (400,), id="encoded-dot-dot"),
        pytest.param("sub/%2e%2e/%2e%2e/%2e%2e/store.db", (400,), id="encoded-dot-dot-inside"),
        pytest.param("..%2F..%2Fstore.db", (400,), id="encoded-slash"),
        pytest.param("leak", (400,), id="symlink-to-etc-passwd"),
        pytest.param("rootlink/etc/passwd", (404,), id="through-symlinked-dir"),
        pytest.param("/etc/passwd", (404,), id="absolute"),
        pytest.param("missing.txt", (404,), id="absent"),
    ],
)
def test_file_browser_never_leaves_the_working_directory(
    client: Any, web: dict[str, Any], path: str, status: tuple[int, ...]
) -> None:
    alice = token(client, "alice")
    for suffix in ("", "?download=1"):
        response = client.get(f"/hyperai/executions/{web['execution']}/files/{path}{suffix}", headers=alice)
        assert response.status_code in status, (path, response.text)
        assert "root:x:0" not in response.text


@pytest.mark.docker
@pytest.mark.airflow
def test_unknown_and_private_gears_are_404_and_actions_say_why(client: Any, web: dict[str, Any]) -> None:
    alice, bob = token(client, "alice"), token(client, "bob")
    for path in ["/hyperai/gears/webui-bob", "/hyperai/gears/nope", "/hyperai/executions/webui-bob/1"]:
        assert client.get(path, headers=alice).status_code == 404, path
    assert client.get("/hyperai/gears/webui-bob", headers=bob).status_code == 200
    # bob sees alice's public gear but may not change it
    assert client.get(f"/hyperai/executions/{web['execution']}", headers=bob).status_code == 200
    refused = client.post(f"/hyperai/api/executions/{web['execution']}/continue", headers=bob)
    assert refused.status_code == 409 and "only its owner" in refused.json()["detail"]
    stop = client.post(f"/hyperai/api/executions/{web['execution']}/stop", headers=alice)
    assert stop.status_code == 409 and "already ended" in stop.json()["detail"]
    unconfirmed = client.post(f"/hyperai/api/executions/{web['execution']}/delete", headers=alice)
    assert unconfirmed.status_code == 400 and "confirm" in unconfirmed.json()["detail"]
    cross_site = client.post(
        f"/hyperai/api/executions/{web['execution']}/stop",
        headers={**alice, "Origin": "https://evil.example"},
    )
    assert cross_site.status_code == 403


@pytest.fixture(scope="module")
def api_server(web: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `airflow api-server` on SQLite, in its own process group."""
    with airflow_api_server(web["env"], tmp_path_factory.mktemp("api-server") / "api-server.log") as url:
        yield url


@pytest.mark.docker
@pytest.mark.airflow
@pytest.mark.slow
def test_browser_logs_in_browses_and_continues(api_server: str, web: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver = headless_chromium()
    timings: dict[str, float] = {}

    def load(name: str, url: str) -> None:
        started = time.perf_counter()
        driver.get(url)
        timings[name] = time.perf_counter() - started
        driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))

    try:
        driver.get(f"{api_server}/auth/login")
        _login(driver, "alice")
        load("gears", f"{api_server}/hyperai/")
        assert "webui-alice" in driver.find_element(By.ID, "gears").text
        load("execution", f"{api_server}/hyperai/executions/{web['execution']}")
        assert "Results" in driver.find_element(By.ID, "readme").text
        load("file", f"{api_server}/hyperai/executions/{web['execution']}/files/sub/hello.txt")
        assert driver.find_element(By.ID, "content").text == "hello"
        driver.get(f"{api_server}/hyperai/executions/{web['execution']}")
        driver.find_element(By.ID, "continue").click()
        try:  # the redirect after the POST triggers a DAG run: give a loaded machine time
            banner = WebDriverWait(driver, 30).until(lambda d: d.find_element(By.ID, "triggered")).text
        except Exception:
            driver.save_screenshot(str(ARTIFACTS / "continue-failed.png"))
            (ARTIFACTS / "continue-failed.html").write_text(driver.page_source)
            raise
        driver.save_screenshot(str(ARTIFACTS / "continued.png"))
        assert DAG_ID in banner
    finally:
        driver.quit()
        (ARTIFACTS / "timings.json").write_text(json.dumps(timings, indent=2))
    runs = _dag_runs(web)
    assert any(run["conf"].get("continue_from") == web["execution"] for run in runs), runs


def _login(driver: Any, user: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, 30)
    wait.until(expected_conditions.presence_of_element_located((By.NAME, "username"))).send_keys(user)
    driver.find_element(By.NAME, "password").send_keys(PASSWORDS[user])
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda d: "_token" in {c["name"] for c in d.get_cookies()})


def _dag_runs(web: dict[str, Any]) -> list[dict[str, Any]]:
    import sqlite3

    home = Path(os.environ["AIRFLOW_HOME"])
    with sqlite3.connect(home / "airflow.db") as db:
        rows = db.execute("SELECT run_id, conf FROM dag_run WHERE dag_id = ?", (DAG_ID,)).fetchall()
    return [{"run_id": run_id, "conf": _conf(conf)} for run_id, conf in rows]


def _conf(value: Any) -> dict[str, Any]:
    if isinstance(value, (bytes, str)):
        try:
            return dict(json.loads(value))
        except ValueError:
            return {}
    return dict(value or {})
