"""The whole openbayes.yaml format (openbayes-cli 0.28), secrets, and the command a restart runs again."""

from __future__ import annotations

from pathlib import Path

import pytest

from hyperai_provider.core.project import load_project, resolve_secrets
from hyperai_provider.exceptions import ConfigurationError
from hyperai_provider.models.openbayes import Algorithm, Goal, HyperTuning, ParameterType, ScaleType


def _load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    (tmp_path / "openbayes.yaml").write_text(text)
    return load_project(tmp_path)


@pytest.mark.parametrize(
    ("text", "inputs", "continue_from"),
    [
        pytest.param(
            "data_bindings:\n  - {data: openbayes/mnist/1, path: /input0, type: ro}\n"
            "  - {data: train/3/output, path: /output, type: rw}\n",
            {"input0": "dataset:mnist@1"},
            "train/3",
            id="long-form-with-types",
        ),
        pytest.param(
            "bindings:\n  - openbayes/mnist/1:/input0\n  - train/3/output:/output:rw\n  - dataset:b@2:/input1:RO\n",
            {"input0": "dataset:mnist@1", "input1": "dataset:b@2"},
            "train/3",
            id="short-form-with-suffixes",
        ),
        pytest.param(
            "data_bindings:\n  - {name: mnist/2, data: ignored/9, path: /openbayes/input/input2, type: READ_ONLY}\n",
            {"input2": "dataset:mnist@2"},
            None,
            id="name-wins-over-data",
        ),
        pytest.param(
            "data_bindings:\n  data_binding: [{data: a/1, path: /input0, type: ro}]\n  bindings: ['b/2:/input1']\n",
            {"input0": "dataset:a@1", "input1": "dataset:b@2"},
            None,
            id="mapping-form",
        ),
        pytest.param(
            "data_bindings: [{data: a/1, path: /input0, type: ro}]\nbindings: ['a/1:/input0', 'g/2/output:/openbayes/home']\n",
            {"input0": "dataset:a@1"},
            "g/2",
            id="both-keys-same-binding-once",
        ),
    ],
)
def test_binding_forms(tmp_path: Path, text: str, inputs: dict[str, str], continue_from: str | None) -> None:
    project = _load(tmp_path, text)
    assert project.inputs == inputs and project.continue_from == continue_from


def test_parameters_split_into_plain_and_secret(tmp_path: Path) -> None:
    project = _load(
        tmp_path,
        "parameters:\n  lr: 0.1\n  wrapped: {value: 3}\n  shown: {value: x, is_secret: false}\n"
        "  HF_TOKEN: {is_secret: true, source: env, env: MY_HF}\n  OLD: {isSecret: true, value: plain}\n",
    )
    assert project.parameters == {"lr": 0.1, "wrapped": 3, "shown": "x"}
    assert set(project.secrets) == {"HF_TOKEN", "OLD"}
    assert "plain" not in repr(project.secrets) and "plain" not in repr(project.operator_arguments())
    assert resolve_secrets(project.secrets, {"MY_HF": "hf_abc"}) == {"HF_TOKEN": "hf_abc", "OLD": "plain"}
    for environ in ({}, {"MY_HF": ""}):
        with pytest.raises(ConfigurationError, match=r"HF_TOKEN \(from \$MY_HF\) have no value"):
            resolve_secrets(project.secrets, environ)


def test_a_hyper_tuning_section_is_read_in_hyperais_spelling(tmp_path: Path) -> None:
    project = _load(
        tmp_path,
        "hyper_tuning:\n  max_job_count: 4\n  parallel_count: '2'\n  hyperparameter_metric: acc\n"
        "  goal: maximize\n  algorithm: bayesian\n  side_metrics: [loss]\n  parameter_specs:\n"
        "  - {name: lr, type: DOUBLE, min_value: 0.001, max_value: 0.1, scale_type: UNIT_LOG_SCALE}\n"
        "  - {name: layers, type: INTEGER, min_value: 1, max_value: 4}\n"
        "  - {name: batch, type: DISCRETE, discrete_values: [16, 32]}\n"
        "  - {name: opt, type: CATEGORICAL, categorical_values: [sgd, adam, 1]}\n",
    )
    tuning = project.hyper_tuning
    assert isinstance(tuning, HyperTuning) and project.tuning
    assert (tuning.goal, tuning.algorithm, tuning.parallel_count) == (Goal.MAXIMIZE, Algorithm.BAYESIAN, 2)
    assert [spec.type for spec in tuning.parameter_specs] == list(ParameterType)
    assert tuning.parameter_specs[1].scale is ScaleType.UNIT_LINEAR_SCALE
    assert tuning.parameter_specs[3].categorical_values == ["sgd", "adam", "1"]
    with pytest.raises(ConfigurationError, match="studies are not supported here yet"):
        project.refuse_study("hyperai run . --no-tuning")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("data_binding: []\n", r"data_binding \(did you mean data_bindings\?\)"),
        ("comand: x\n", r"comand \(did you mean command\?\)"),
        ("image: x\n", r"image \(did you mean env\?\)"),
        ("goal: MAXIMIZE\n", r"goal \(it belongs under hyper_tuning\)"),
        ("data_bindings: [{data: a/1, path: /input0, typ: ro}]\n", r"typ \(did you mean type\?\)"),
        ("parameters:\n  K: {is_secret: true, sorce: env, env: K}\n", r"sorce \(did you mean source\?\)"),
        ("parameters:\n  K: {is_secret: true, source: env}\n", "no 'env'"),
        ("parameters:\n  K: {is_secret: true}\n", "add source: env"),
        ("parameters:\n  K: {source: env, env: K}\n", "is_secret is not true"),
        ("parameters:\n  K: {is_secret: true, source: file, env: K}\n", "Input should be 'env'"),
        ("node: 3\n", "multi-node"),
        ("node: -1\n", "greater than or equal to 0"),
        ("bindings: ['a/1:/input0:rw']\n", "bound read-write"),
        ("bindings: ['a/1:/input0', 'b/1:/input0']\n", "bound twice"),
        ("bindings: ['a/1/output:/output', 'b/1/output:/output']\n", "/output is bound twice"),
        ("data_bindings: [{data: a/1, path: /input0, type: rx}]\n", "Input should be 'ro' or 'rw'"),
        ("hyper_tuning: {max_job_count: 101}\n", "less than or equal to 100"),
        (
            "hyper_tuning: {max_job_count: 2}\n",
            "needs hyperparameter_metric, goal, algorithm, parameter_specs",
        ),
        (
            "hyper_tuning:\n  parameter_specs: [{name: a, type: DOUBLE, min_value: 2, max_value: 1}]\n",
            "greater than",
        ),
        (
            "hyper_tuning:\n  parameter_specs: [{name: a, type: DOUBLE, min_value: 0, max_value: 1, scale_type: UNIT_LOG_SCALE}]\n",
            "must be above 0",
        ),
        ("hyper_tuning:\n  parameter_specs: [{name: a, type: DISCRETE, min_value: 1}]\n", "does not apply"),
        ("hyper_tuning:\n  parameter_specs: [{name: a, type: CATEGORICAL}]\n", "categorical_values"),
        (
            "hyper_tuning:\n  parameter_specs: [{name: a, type: INTEGER, min_value: 0.5, max_value: 2}]\n",
            "whole numbers",
        ),
        (
            "hyper_tuning:\n  parameter_specs: [{name: a, type: DISCRETE, discrete_values: [1]}, {name: a, type: DISCRETE, discrete_values: [2]}]\n",
            "more than once",
        ),
        ("hyper_tuning:\n  max_job_count: 2\n  hyperparameter_metric: acc\n  goal: UP\n", "goal"),
    ],
)
def test_mistakes_are_named(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        _load(tmp_path, text)


def test_restart_runs_the_command_as_it_was_given() -> None:
    from hyperai_provider.cli.restart import original_command
    from hyperai_provider.core.planner import build_command
    from hyperai_provider.models import ComputeType, ExecutionRecord

    compute = ComputeType(name="cpu", cpus=1, memory=2**30, disk_quota=2**30)  # type: ignore[arg-type]
    for command, parameters in [
        ("python main.py", {"lr": 0.1, "name": "a b"}),
        ("python main.py", {}),
        (["python3", "main.py"], {"flag": True}),
    ]:
        record = ExecutionRecord(
            id="g/1", gear="g", number=1, compute=compute, image="x",
            command=build_command(command, parameters), parameters=parameters,
        )  # fmt: skip
        assert original_command(record) == command
