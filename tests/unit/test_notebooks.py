"""Notebooks as code: validation before start, export to scripts, the CLI command."""

from __future__ import annotations

from pathlib import Path

import pytest

from hyperai_provider.core.code import code_files
from hyperai_provider.core.gears import GearService
from hyperai_provider.core.notebooks import check_notebooks, default_command, export_script
from hyperai_provider.exceptions import ConfigurationError
from hyperai_provider.models.spec import ExecutionSpec
from tests.conftest import run_cli, write_notebook


def test_export_keeps_code_cells_in_order(tmp_path: Path) -> None:
    notebook = write_notebook(tmp_path / "train.ipynb", "x = 1", "print(x + 1)")
    script = export_script(notebook, tmp_path / "out" / "train.py")
    text = script.read_text()
    assert text.index("x = 1") < text.index("print(x + 1)")
    assert "# Training" in text  # markdown survives as comments
    compile(text, str(script), "exec")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param('{"cells": [', r"is not valid JSON \(line 1", id="truncated-json"),
        pytest.param(
            '{"cells": "nope", "nbformat": 4}', "is not a valid nbformat 4 notebook", id="not-nbformat"
        ),
        pytest.param("[]", "is not a valid nbformat 4 notebook", id="json-list"),
    ],
)
def test_a_broken_notebook_is_refused_with_what_is_wrong(tmp_path: Path, content: str, message: str) -> None:
    bad = tmp_path / "bad.ipynb"
    bad.write_text(content)
    with pytest.raises(ConfigurationError, match=message) as caught:
        check_notebooks(code_files(bad))
    assert caught.value.hint


def test_a_notebook_next_to_its_script_name_is_refused(tmp_path: Path) -> None:
    write_notebook(tmp_path / "code" / "train.ipynb", "print(1)")
    (tmp_path / "code" / "train.py").write_text("print(2)\n")
    with pytest.raises(ConfigurationError, match="both train.ipynb and train.py"):
        check_notebooks(code_files(tmp_path / "code"))


def test_the_default_command_runs_the_only_notebook() -> None:
    assert default_command(["sub/train.ipynb"]) == ["python3", "sub/train.py"]
    with pytest.raises(ConfigurationError, match=r"exactly one notebook \(found: none\)"):
        default_command([])
    with pytest.raises(ConfigurationError, match="a.ipynb, b.ipynb"):
        default_command(["a.ipynb", "b.ipynb"])


def test_a_code_folder_without_command_is_accepted_by_the_spec(tmp_path: Path) -> None:
    spec = ExecutionSpec(gear="nb", image="python", code=tmp_path)
    assert spec.command is None


def test_a_broken_notebook_fails_the_plan_before_any_record(service: GearService, tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "analysis.ipynb").write_text("not json")
    with pytest.raises(ConfigurationError, match="analysis.ipynb' is not valid JSON"):
        service.plan(ExecutionSpec(gear="nb", image="python", code=code, command="python3 x.py"))
    assert service.executions() == []


def test_cli_exports_next_to_the_notebook_or_to_a_file(tmp_path: Path, storage_root: Path) -> None:
    notebook = write_notebook(tmp_path / "explore.ipynb", "print('hello')")
    done = run_cli("notebook", "export", str(notebook), storage_root=storage_root)
    assert done.returncode == 0, done.stderr
    assert "print('hello')" in (tmp_path / "explore.py").read_text()
    target = tmp_path / "scripts" / "run.py"
    done = run_cli("notebook", "export", str(notebook), "-o", str(target), storage_root=storage_root)
    assert done.returncode == 0 and done.stdout.strip() == str(target)
    assert "print('hello')" in target.read_text()
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{")
    failed = run_cli("notebook", "export", str(broken), storage_root=storage_root)
    assert failed.returncode != 0 and "is not valid JSON" in failed.stderr
    assert not (tmp_path / "broken.py").exists()
