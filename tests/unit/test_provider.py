"""Provider registration and the hyperai connection (no Docker needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hyperai_provider.core.settings import HyperAISettings, default_storage_root
from hyperai_provider.get_provider_info import get_provider_info


def test_provider_info_validates_against_airflows_schema() -> None:
    import json
    from importlib import resources

    import jsonschema

    schema = json.loads(resources.files("airflow").joinpath("provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_airflow_lists_the_provider_and_its_connection_type() -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "list"], capture_output=True, text=True, timeout=120
    )
    assert "hyperai-provider" in listed.stdout, listed.stderr[-2000:]
    hooks = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "hooks"], capture_output=True, text=True, timeout=120
    )
    assert "hyperai" in hooks.stdout and "HyperAIHook" in hooks.stdout


def test_hook_does_no_io_when_created() -> None:
    from hyperai_provider.hooks.hyperai import HyperAIHook

    hook = HyperAIHook("some_conn_that_does_not_exist")
    assert hook._service is None


def test_missing_default_connection_means_local_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from hyperai_provider.hooks.hyperai import HyperAIHook

    monkeypatch.setenv("HYPERAI_STORAGE_ROOT", str(tmp_path / "root"))
    settings = HyperAIHook().settings()
    assert settings.storage_root == tmp_path / "root"
    assert settings.docker_host is None
    assert settings.resolved_store_url == f"sqlite:///{tmp_path / 'root' / 'store.db'}"


def test_connection_fields_override_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from hyperai_provider.hooks.hyperai import HyperAIHook

    monkeypatch.setenv(
        "AIRFLOW_CONN_HYPERAI_DEFAULT",
        '{"conn_type": "hyperai", "host": "tcp://docker.example:2375", '
        f'"extra": {{"storage_root": "{tmp_path}/srv", "store_url": "sqlite:///{tmp_path}/x.db"}}}}',
    )
    settings = HyperAIHook().settings()
    assert settings.docker_host == "tcp://docker.example:2375"
    assert settings.storage_root == tmp_path / "srv"
    assert settings.resolved_store_url == f"sqlite:///{tmp_path}/x.db"


def test_storage_root_defaults_to_airflow_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("HYPERAI_STORAGE_ROOT", raising=False)
    monkeypatch.delenv("AIRFLOW__HYPERAI__STORAGE_ROOT", raising=False)
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    assert default_storage_root() == tmp_path / "hyperai"
    monkeypatch.setenv("AIRFLOW__HYPERAI__STORAGE_ROOT", str(tmp_path / "cfg"))
    assert HyperAISettings.from_env().storage_root == tmp_path / "cfg"
    monkeypatch.setenv("HYPERAI_STORAGE_ROOT", str(tmp_path / "env"))
    assert HyperAISettings.from_env().storage_root == tmp_path / "env"
