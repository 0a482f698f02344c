"""openbayes.yaml project folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from hyperai_provider.core.project import load_project
from hyperai_provider.exceptions import ConfigurationError


def _project(tmp_path: Path, text: str) -> Path:
    (tmp_path / "openbayes.yaml").write_text(text)
    (tmp_path / "train.py").write_text("print('hi')\n")
    return tmp_path


def test_a_hyperai_project_maps_onto_operator_arguments(tmp_path: Path) -> None:
    project = load_project(
        _project(
            tmp_path,
            "resource: cpu\nenv: python\ncommand: python3 train.py\n"
            "parameters:\n  lr: 0.1\n  epochs: 3\n"
            "data_bindings:\n  - data: openbayes/mnist/2\n    path: /input0\n"
            "  - data: mnist-train/4/output\n    path: /output\n"
            "bindings:\n  - 'features/latest:/hyperai/input/input1'\n",
        )
    )
    assert project.operator_arguments() == {
        "code": str(tmp_path),
        "compute_type": "cpu",
        "image": "python",
        "command": "python3 train.py",
        "continue_from": "mnist-train/4",
        "parameters": {"lr": 0.1, "epochs": 3},
        "inputs": {"input0": "dataset:mnist@2", "input1": "dataset:features@latest"},
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("resource: cpu\nimage: x\n", r"unknown key\(s\): image"),
        ("bindings:\n  - 'mnist/1:/data'\n", "cannot bind to '/data'"),
        ("bindings:\n  - 'mnist/1:/input0'\n  - 'other/1:/input0'\n", "bound twice"),
        ("data_bindings:\n  - data: mnist/1\n", "needs 'data' and 'path'"),
        ("parameters: [1, 2]\n", "'parameters' must be a mapping"),
        ("resource: [\n", "not valid YAML"),
    ],
)
def test_bad_projects_are_reported_not_ignored(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_project(_project(tmp_path, text))


def test_a_folder_without_a_project_file_is_explained(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="has no openbayes.yaml"):
        load_project(tmp_path)


def test_from_project_builds_a_gear_task_relative_to_the_dag_file(tmp_path: Path) -> None:
    import importlib.util

    (tmp_path / "proj").mkdir()
    _project(
        tmp_path / "proj",
        "resource: cpu-large\nenv: python\ncommand: python3 train.py\nbindings: ['mnist/2:/input0']\n",
    )
    dag_file = tmp_path / "project_dag.py"
    dag_file.write_text(
        "from hyperai_provider.operators import GearTaskOperator\n"
        "train = GearTaskOperator.from_project('proj', task_id='train', compute_type='cpu')\n"
    )
    spec = importlib.util.spec_from_file_location("project_dag", dag_file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    train = module.train
    assert train.code == str(tmp_path / "proj")
    assert (train.compute_type, train.image, train.command) == ("cpu", "python", "python3 train.py")
    assert train.inputs == {"input0": "dataset:mnist@2"}
    (tmp_path / "proj" / "openbayes.yaml").write_text("resource: cpu\ngpu: 1\n")
    with pytest.raises(ConfigurationError, match="unknown key"):  # at DAG parse time
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
