"""Bad input is refused before any record or container exists, and the error says what to do (issue 11).

Each of these used to reach Docker (or the store) first: memory below Docker's minimum, too few CPUs, an
shm_size of 0, empty or '='-containing environment names, NUL bytes in the environment, the command or the
parameters, NaN/infinite parameters (a record that could not be read back), an argument list beyond what
Linux can exec, and image references Docker cannot parse (a raw APIError).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from hyperai_provider.core.catalog import Catalogs
from hyperai_provider.core.gears import GearService
from hyperai_provider.exceptions import ConfigurationError
from hyperai_provider.models import ExecutionState
from hyperai_provider.models.reference import reference_problem
from hyperai_provider.models.spec import ARGUMENT_LIST_LIMIT, MAX_ARG_STRLEN, build_spec
from tests.conftest import managed_names, run_cli

FILE_HINT = "put large data in a file in the code folder"


def request(**fields: object):  # type: ignore[no-untyped-def]
    return build_spec(
        **{"gear": "bad", "image": "python", "compute_type": "cpu", "command": "true", **fields}
    )


def assert_nothing_created(service: GearService) -> None:
    assert service.executions() == []
    assert managed_names(service.settings.storage_root) == set()


@pytest.mark.docker
@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param(
            {"environment": {"": "x"}}, "empty name: give every variable a name", id="env-empty-name"
        ),
        pytest.param({"environment": {"A=B": "x"}}, "'A=B' contains '='", id="env-name-with-equals"),
        pytest.param(
            {"environment": {"A\0B": "x"}}, "name 'A\\\\x00B' contains a NUL byte", id="env-name-nul"
        ),
        pytest.param({"environment": {"MODE": "a\0b"}}, "'MODE' contains a NUL byte", id="env-value-nul"),
        pytest.param({"command": "echo a\0b"}, "command contains a NUL byte", id="shell-command-nul"),
        pytest.param({"command": ["echo", "a\0b"]}, "command item 1 .* contains a NUL byte", id="argv-nul"),
        pytest.param(
            {"parameters": {"tag": "a\0b"}}, "parameter 'tag' contains a NUL byte", id="parameter-nul"
        ),
        pytest.param(
            {"parameters": {"lr": float("nan")}}, "'lr' is nan; parameters must be finite", id="nan"
        ),
        pytest.param(
            {"parameters": {"lr": float("inf")}}, "'lr' is inf; parameters must be finite", id="inf"
        ),
        pytest.param(
            {"parameters": {"lr": float("-inf")}}, "'lr' is -inf; parameters must be finite", id="-inf"
        ),
        pytest.param(
            {"image": "Bad Image!!"}, "'Bad Image!!' is neither a catalog name nor", id="image-spaces"
        ),
        pytest.param({"image": "UPPER/case"}, "repository name must be lowercase", id="image-uppercase"),
        pytest.param({"image": "a:b:c"}, "more than one ':'", id="image-two-colons"),
    ],
)
def test_bad_request_is_refused_before_anything_exists(
    docker_service: GearService, fields: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        docker_service.run(request(**fields), on_line=lambda _: None)
    assert str(caught.value).startswith("Invalid execution request: ")
    assert_nothing_created(docker_service)


@pytest.mark.docker
def test_one_argument_beyond_linux_limit_is_refused_with_its_size(docker_service: GearService) -> None:
    blob = "x" * 200_000
    with pytest.raises(
        ConfigurationError, match=r"is 200,0\d\d bytes; Linux passes at most 131,072"
    ) as caught:
        docker_service.run(request(parameters={"blob": blob}), on_line=lambda _: None)
    assert FILE_HINT in str(caught.value)
    with pytest.raises(ConfigurationError, match=r"environment variable 'BLOB' is 200,006 bytes"):
        docker_service.run(request(environment={"BLOB": blob}), on_line=lambda _: None)
    assert_nothing_created(docker_service)


@pytest.mark.docker
def test_argument_list_beyond_the_bound_is_refused_and_one_below_it_runs(docker_service: GearService) -> None:
    command = ["python3", "-c", "import sys; print('argv', len(sys.argv), sum(map(len, sys.argv[1:])))"]
    too_many = {f"p{i}": "x" * 100_000 for i in range(12)}  # each fits one argument; together 1.2 MB
    with pytest.raises(ConfigurationError, match=r"take 1,200,\d+ bytes; at most 1,048,576") as caught:
        docker_service.run(request(command=command, parameters=too_many), on_line=lambda _: None)
    assert FILE_HINT in str(caught.value)
    assert_nothing_created(docker_service)

    # Just inside the bound, with single arguments near MAX_ARG_STRLEN: Linux really starts it.
    size = MAX_ARG_STRLEN - 100
    count = ARGUMENT_LIST_LIMIT // (size + 10) - 1
    lines: list[str] = []
    record = docker_service.run(
        request(command=command, parameters={f"p{i}": "y" * size for i in range(count)}), on_line=lines.append
    )
    assert record.state is ExecutionState.SUCCEEDED
    assert f"argv {count + 1} {count * (size + len('--p0='))}" in lines
    print(f"\n{count} arguments of {size:,} bytes ({count * size / 2**20:.2f} MiB) ran")


@pytest.mark.docker
@pytest.mark.parametrize(
    ("entry", "message"),
    [
        pytest.param("memory: 4MiB", "memory 4.0MiB is below Docker's minimum of 6 MiB", id="memory-4MiB"),
        pytest.param("memory: 0", "memory 0B is below Docker's minimum of 6 MiB", id="memory-0"),
        pytest.param("cpus: 0.001", "cpus 0.001 is below Docker's minimum of 0.01", id="cpus-0.001"),
        pytest.param("shm_size: 0", "shm_size 0 is not a size", id="shm-0"),
    ],
)
def test_compute_type_docker_cannot_run_fails_when_the_catalog_loads(
    docker_service: GearService, entry: str, message: str
) -> None:
    root = docker_service.settings.storage_root
    fields = {"cpus": "1", "memory": "1GiB", "disk_quota": "1GiB"}
    key, value = entry.split(": ")
    fields[key] = value
    (root / "compute_types.yaml").write_text("tiny:\n" + "".join(f"  {k}: {v}\n" for k, v in fields.items()))
    with pytest.raises(
        ConfigurationError, match=re.escape(f"Entry 'tiny' in {root}/compute_types.yaml is invalid")
    ) as caught:
        Catalogs(root)
    assert message in str(caught.value)
    with pytest.raises(ConfigurationError, match="(?s)Entry 'tiny'.*" + re.escape(message)):
        docker_service.run(request(compute_type="tiny"), on_line=lambda _: None)
    assert_nothing_created(docker_service)


@pytest.mark.docker
def test_nan_parameter_in_a_project_is_refused_by_hyperai_run(
    docker_service: GearService, tmp_path: Path
) -> None:
    project = tmp_path / "nan"
    project.mkdir()
    (project / "openbayes.yaml").write_text(
        "resource: cpu\nenv: python\ncommand: 'true'\nparameters: {lr: .nan}\n"
    )
    root = docker_service.settings.storage_root
    ran = run_cli("run", str(project), storage_root=root)
    assert ran.returncode != 0
    assert "parameter 'lr' is nan; parameters must be finite" in ran.stdout + ran.stderr
    listed = run_cli("executions", "--json", storage_root=root)  # the store stays readable for everybody
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []
    assert_nothing_created(docker_service)


def test_catalog_names_and_ordinary_references_stay_valid() -> None:
    for image in ["python", "jupyter", "pytorch-2.5", "MyTeamImage", "hyperai/base:bookworm-1"]:
        assert request(image=image).image == image
    assert request(image="registry.example.com:5000/team/train:v1.2@sha256:" + "a" * 64)


@pytest.mark.docker
def test_reference_grammar_agrees_with_the_engine(docker_engine) -> None:  # type: ignore[no-untyped-def]
    """The engine's own parser (400 'invalid reference format' vs 404 'no such image') gives the same verdict."""
    import docker

    invalid = ["Bad Image!!", "UPPER", "a:b:c", "-x", "x:-tag", "a___b", "a.-b", "x:" + "t" * 129]
    valid = ["pytorch-2.5", "my_image", "a__b", "a--b", "localhost:5000/x/y:1", "Registry.Example.com/x:tag"]
    valid.append("hyperai/not-here@sha256:" + "0" * 64)
    for reference in invalid + valid:
        try:
            docker_engine.api.inspect_image(reference)
            engine_valid = True
        except docker.errors.NotFound:
            engine_valid = True
        except docker.errors.APIError as error:
            assert error.status_code == 400 and "invalid reference format" in str(error.explanation), error
            engine_valid = False
        assert (reference_problem(reference) is None) == engine_valid, reference
        assert engine_valid == (reference in valid), reference


@pytest.mark.docker
def test_the_per_argument_limit_is_the_kernels(docker_service: GearService) -> None:
    """Inside a container, an argument of MAX_ARG_STRLEN - 1 bytes (plus its NUL) execs; one byte more does not."""
    probe = (
        "import errno, os, subprocess, sys\n"
        "n = int(sys.argv[1])\n"
        "subprocess.run(['true', 'x' * (n - 1)], check=True)\n"
        "try:\n"
        "    subprocess.run(['true', 'x' * n])\n"
        "except OSError as error:\n"
        "    print('refused', errno.errorcode[error.errno])\n"
    )
    lines: list[str] = []
    docker_service.run(request(command=["python3", "-c", probe, str(MAX_ARG_STRLEN)]), on_line=lines.append)
    assert "refused E2BIG" in lines
