"""The first look (issue 16): on a fresh AIRFLOW_HOME, `scripts/quickstart.sh` runs the quickstart DAG and
prints how to open the web UI; the api-server started that way shows the quickstart's gear to the user it
names, read-only to an Airflow admin who does not own it and to a viewer Airflow lets see the DAG, and
nothing to a viewer it does not (404).

The users beyond the README's: ``ops`` (admin role), ``rita`` and ``vera`` (viewer role). Airflow's
multi-team mode puts the DAGs folder's bundle in team ``research``: rita is in it, vera (team ``sales``)
may not see the DAG. Screenshots and timings go to artifacts/first_look/.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, airflow_api_server, airflow_jwt, headless_chromium

pytestmark = [pytest.mark.docker, pytest.mark.airflow, pytest.mark.slow]

ARTIFACTS = ROOT / "artifacts" / "first_look"
GEAR = "hyperai_quickstart"
BUNDLES = [
    {
        "name": "dags-folder",
        "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
        "kwargs": {},
        "team_name": "research",
    }
]
TEAMS = {
    "AIRFLOW__CORE__MULTI_TEAM": "True",
    "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(BUNDLES),
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,ops:admin,rita:viewer:research,vera:viewer:sales",
}
OWNER_ACTIONS = ("continue", "stop", "confirm-delete", "dataset-version")
TIMINGS: dict[str, float] = {}


def _clean_environment(home: Path) -> dict[str, str]:
    """The caller's environment without this test session's Airflow/HyperAI settings (conftest points
    them at its own home), as on a fresh machine, plus the fresh home and the team setup."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "HYPERAI_"))}
    return {**kept, "AIRFLOW_HOME": str(home), **TEAMS}


@pytest.fixture(scope="module")
def first_look(
    tmp_path_factory: pytest.TempPathFactory, docker_engine: Any, base_image: str
) -> Iterator[dict[str, Any]]:
    """quickstart.sh on a fresh home, then the api-server as its last lines say."""
    work = tmp_path_factory.mktemp("first-look")
    home = work / "airflow-home"
    env = _clean_environment(home)
    airflow = [sys.executable, "-m", "airflow"]
    subprocess.run([*airflow, "db", "migrate"], check=True, capture_output=True, env=env)
    for team in ("research", "sales"):  # teams exist before the auth manager and the bundles name them
        subprocess.run([*airflow, "teams", "create", team], check=True, capture_output=True, env=env)

    started = time.perf_counter()
    quickstart = subprocess.run(
        ["scripts/quickstart.sh", GEAR], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    TIMINGS["quickstart_s"] = round(time.perf_counter() - started, 1)
    output = quickstart.stdout + quickstart.stderr
    (work / "quickstart.log").write_text(output)
    assert quickstart.returncode == 0, output[-4000:]

    command = re.search(r"^  AIRFLOW_HOME=(\S+) (\S+) api-server --port 8080$", quickstart.stdout, re.M)
    user = re.search(r"log in as (\S+), who owns the gears above", quickstart.stdout)
    passwords = re.search(r"the password is in (\S+) \(", quickstart.stdout)
    cli = re.search(r"^  HYPERAI_USER=(\S+) (\S+) --storage-root (\S+) gears$", quickstart.stdout, re.M)
    assert command and user and passwords and cli, quickstart.stdout[-3000:]
    assert Path(command.group(1)) == home and Path(command.group(2)).name == "airflow"
    assert user.group(1) == cli.group(1) == "admin"
    password_of = json.loads(Path(passwords.group(1)).read_text())

    # the CLI line the quickstart printed lists the gear; the CLI as anyone else does not (private)
    listed = subprocess.run([cli.group(2), "--storage-root", cli.group(3), "gears", "--json"],
                            env={**env, "HYPERAI_USER": "admin"}, capture_output=True, text=True)  # fmt: skip
    assert listed.returncode == 0 and GEAR in {g["name"] for g in json.loads(listed.stdout)}, listed.stderr
    other = subprocess.run([cli.group(2), "--storage-root", cli.group(3), "gears", "--json"],
                           env={**env, "HYPERAI_USER": "vera"}, capture_output=True, text=True)  # fmt: skip
    assert json.loads(other.stdout) == [], other.stdout

    started = time.perf_counter()
    server_env = {**TEAMS, "AIRFLOW_HOME": command.group(1), "HYPERAI_STORAGE_ROOT": ""}
    with airflow_api_server(server_env, work / "api-server.log", timeout=120) as url:
        TIMINGS["api_server_ready_s"] = round(time.perf_counter() - started, 1)
        yield {"url": url, "owner": user.group(1), "passwords": password_of, "execution": f"{GEAR}/1"}


def _client(first_look: dict[str, Any], user: str) -> httpx.Client:
    url = first_look["url"]
    token = airflow_jwt(url, user, first_look["passwords"][user])
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def test_the_owner_reads_and_may_change_the_quickstarts_gear(first_look: dict[str, Any]) -> None:
    with _client(first_look, first_look["owner"]) as owner:
        gears = {g["name"]: g for g in owner.get("/hyperai/api/gears").json()}
        assert gears[GEAR]["owner"] == "admin" and gears[GEAR]["executions"] == 1
        page = owner.get(f"/hyperai/executions/{first_look['execution']}").text
        assert 'id="continue"' in page and 'id="read-only"' not in page
        assert 'id="dataset-version"' in page


@pytest.mark.parametrize("user", ["ops", "rita"], ids=["airflow-admin", "viewer-who-may-see-the-dag"])
def test_others_whom_airflow_lets_read_see_it_read_only(first_look: dict[str, Any], user: str) -> None:
    execution = first_look["execution"]
    with _client(first_look, user) as reader:
        assert GEAR in {g["name"] for g in reader.get("/hyperai/api/gears").json()}
        assert reader.get(f"/hyperai/api/executions/{execution}").json()["state"] == "succeeded"
        gears_page = reader.get("/hyperai/").text
        assert "Make public" not in gears_page and "Make private" not in gears_page
        for path in (f"/hyperai/gears/{GEAR}", f"/hyperai/executions/{execution}"):
            page = reader.get(path)
            assert page.status_code == 200 and 'id="read-only"' in page.text, path
            assert not any(f'id="{action}"' in page.text for action in OWNER_ACTIONS), path
        assert reader.get(f"/hyperai/executions/{execution}/files/metrics.json").status_code == 200
        assert reader.get(f"/hyperai/executions/{execution}/delete").status_code == 409
        for action, form in (
            (f"/hyperai/api/gears/{GEAR}/visibility", {"visibility": "public"}),
            (f"/hyperai/api/executions/{execution}/continue", {}),
            (f"/hyperai/api/executions/{execution}/stop", {}),
            (f"/hyperai/api/executions/{execution}/delete", {"confirm": execution}),
        ):
            refused = reader.post(action, data=form)
            assert refused.status_code == 409 and "only its owner" in refused.json()["detail"], action
    with _client(first_look, first_look["owner"]) as owner:  # nothing changed
        gear = {g["name"]: g for g in owner.get("/hyperai/api/gears").json()}[GEAR]
        assert gear["visibility"] == "private" and gear["executions"] == 1


def test_a_viewer_who_may_not_see_the_dag_gets_404(first_look: dict[str, Any]) -> None:
    execution = first_look["execution"]
    with _client(first_look, "vera") as vera:
        assert vera.get("/hyperai/api/gears").json() == []
        for path in (
            f"/hyperai/gears/{GEAR}",
            f"/hyperai/executions/{execution}",
            f"/hyperai/executions/{execution}/files/metrics.json",
            f"/hyperai/executions/{execution}/archive.tar.gz",
            f"/hyperai/api/executions/{execution}",
            f"/hyperai/api/gears/{GEAR}/executions",
        ):
            assert vera.get(path).status_code == 404, path
        assert vera.post(f"/hyperai/api/executions/{execution}/stop").status_code == 404
        empty = vera.get("/hyperai/").text
        assert 'id="empty"' in empty and "scripts/quickstart.sh" in empty


def test_the_browser_shows_the_first_look(first_look: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver = headless_chromium()
    url, execution = first_look["url"], first_look["execution"]

    def load(name: str, path: str) -> str:
        started = time.perf_counter()
        driver.get(f"{url}{path}")
        TIMINGS[f"{name}_s"] = round(time.perf_counter() - started, 2)
        driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))
        return str(driver.find_element(By.TAG_NAME, "body").text)

    def ids() -> set[str]:
        return {str(e.get_attribute("id")) for e in driver.find_elements(By.CSS_SELECTOR, "[id]")}

    try:
        _login(driver, url, first_look["owner"], first_look["passwords"])
        gears = load("owner_gears", "/hyperai/")
        assert GEAR in driver.find_element(By.ID, "gears").text and "Signed in as admin" in gears
        load("owner_execution", f"/hyperai/executions/{execution}")
        assert "succeeded" in driver.find_element(By.ID, "state").text
        assert {"continue", "dataset-version"} <= ids() and "read-only" not in ids()

        _login(driver, url, "ops", first_look["passwords"])
        assert (
            GEAR in load("admin_gears", "/hyperai/")
            and "Airflow admin" in driver.find_element(By.ID, "who").text
        )
        load("admin_execution", f"/hyperai/executions/{execution}")
        assert "read-only" in ids() and not set(OWNER_ACTIONS) & ids()

        _login(driver, url, "vera", first_look["passwords"])
        load("viewer_gears", "/hyperai/")
        assert "empty" in ids() and GEAR not in driver.find_element(By.TAG_NAME, "body").text
        assert "does not exist" in load("viewer_execution", f"/hyperai/executions/{execution}")
    finally:
        driver.quit()
        (ARTIFACTS / "timings.json").write_text(json.dumps(TIMINGS, indent=2))


def _login(driver: Any, url: str, user: str, passwords: dict[str, str]) -> None:
    """Airflow's own login page (SimpleAuthManager), as a person would; any earlier session is dropped."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{url}/auth/login")
    driver.delete_all_cookies()
    driver.get(f"{url}/auth/login")
    wait = WebDriverWait(driver, 30)
    wait.until(expected_conditions.presence_of_element_located((By.NAME, "username"))).send_keys(user)
    driver.find_element(By.NAME, "password").send_keys(passwords[user])
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda d: "_token" in {c["name"] for c in d.get_cookies()})
