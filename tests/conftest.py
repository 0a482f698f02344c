"""Shared fixtures. Airflow is pointed at a throw-away home before anything imports it.

Tests that need Docker use the ``docker_engine`` fixture: outside CI they skip (and say why) when no
engine answers; with CI=true they fail loudly instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

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


def _need(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


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
    if svc._store is not None:
        svc.store.dispose()


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
