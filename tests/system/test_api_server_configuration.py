"""The web UI in a real `airflow api-server` reads its configuration like the tasks do: ``[hyperai]``
options in airflow.cfg count, not only environment variables."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from hyperai_provider.core.gears import GearService
from hyperai_provider.core.settings import HyperAISettings
from hyperai_provider.models import ComputeType, ExecutionRecord, ExecutionState
from tests.conftest import airflow_api_server, airflow_jwt

pytestmark = [pytest.mark.airflow, pytest.mark.slow]


def test_the_api_server_honours_hyperai_storage_root_in_airflow_cfg(tmp_path: Path) -> None:
    home, storage = tmp_path / "airflow-home", tmp_path / "configured-storage"
    home.mkdir()
    passwords = tmp_path / "passwords.json"
    passwords.write_text(json.dumps({"alice": "alice-pw"}))
    (home / "airflow.cfg").write_text(
        f"[core]\nload_examples = False\nsimple_auth_manager_users = alice:admin\n"
        f"simple_auth_manager_passwords_file = {passwords}\n\n"
        f"[api_auth]\njwt_secret = {'configuration-test-secret-' + '0' * 48}\n\n"
        f"[hyperai]\nstorage_root = {storage}\n"
    )
    env = {"AIRFLOW_HOME": str(home), "HYPERAI_STORAGE_ROOT": "", "AIRFLOW__CORE__DAGS_FOLDER": str(tmp_path)}
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True, env=_env(env)
    )
    service = GearService(HyperAISettings(storage_root=storage, user="alice"))
    compute = ComputeType(name="cpu", cpus=1, memory=1024**3, disk_quota=1024**3)  # type: ignore[arg-type]
    service.store.create_execution(
        "configured-gear",
        "alice",
        lambda id_, n: ExecutionRecord(
            id=id_, gear="configured-gear", number=n, owner="alice", compute=compute, image="img",
            state=ExecutionState.CREATED,
        ),
    )  # fmt: skip
    service.backend.close()
    with airflow_api_server(env, tmp_path / "api-server.log") as url:
        token = airflow_jwt(url, "alice", "alice-pw")
        response = httpx.get(f"{url}/hyperai/api/gears", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert response.status_code == 200, response.text
    assert [gear["name"] for gear in response.json()] == ["configured-gear"]


def _env(extra: dict[str, str]) -> dict[str, str]:
    import os

    return {**os.environ, **extra}
