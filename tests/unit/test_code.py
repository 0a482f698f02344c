"""Code upload: ignore rules, parameter files, conflicts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hyperai_provider.core.code import copy_code, write_parameters
from hyperai_provider.exceptions import ConfigurationError, ConflictError


def _project(tmp_path: Path) -> Path:
    source = tmp_path / "src"
    (source / "pkg").mkdir(parents=True)
    (source / "train.py").write_text("print('hi')\n")
    (source / "pkg" / "util.py").write_text("x = 1\n")
    (source / "data.bin").write_bytes(b"0" * 100)
    (source / "logs").mkdir()
    (source / "logs" / "old.txt").write_text("old")
    (source / "__pycache__").mkdir()
    (source / "__pycache__" / "x.pyc").write_bytes(b"")
    (source / ".hyperaiignore").write_text("*.bin\nlogs/\n")
    return source


def test_hyperaiignore_uses_gitignore_syntax(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    result = copy_code(_project(tmp_path), home)
    assert sorted(result.copied) == ["pkg/util.py", "train.py"]
    assert not (home / "data.bin").exists() and not (home / "logs").exists()


def test_a_single_file_is_copied_by_name(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    copy_code(_project(tmp_path) / "train.py", home)
    assert (home / "train.py").read_text() == "print('hi')\n"


def test_missing_code_path_is_explained(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        copy_code(tmp_path / "nope", tmp_path)


def test_conflicts_keep_overwrite_or_error(tmp_path: Path) -> None:
    source = _project(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    (home / "train.py").write_text("previous\n")
    kept = copy_code(source, home, "keep")
    assert kept.kept == ["train.py"] and (home / "train.py").read_text() == "previous\n"
    with pytest.raises(ConflictError, match="train.py"):
        copy_code(source, home, "error")
    copy_code(source, home, "overwrite")
    assert (home / "train.py").read_text() == "print('hi')\n"


def test_parameters_are_written_under_both_names(tmp_path: Path) -> None:
    write_parameters(tmp_path, {"lr": 0.1, "epochs": 3})
    for name in ("hyperai_params.json", "openbayes_params.json"):
        assert json.loads((tmp_path / name).read_text()) == {"epochs": 3, "lr": 0.1}
    assert not list(tmp_path.glob("*.tmp"))
