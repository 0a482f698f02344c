"""Notebooks run as tasks, and tasks that take their code from an execution's working directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from hyperai_provider.core.gears import GearService
from hyperai_provider.exceptions import ConfigurationError, ConflictError, NotFoundError
from hyperai_provider.models import ExecutionState
from hyperai_provider.models.spec import ExecutionSpec
from tests.conftest import write_notebook

pytestmark = pytest.mark.docker


def task(**fields) -> ExecutionSpec:  # type: ignore[no-untyped-def]
    return ExecutionSpec.model_validate({"gear": "promo", "image": "python", **fields})


def test_a_notebook_without_command_is_exported_and_run(docker_service: GearService, tmp_path: Path) -> None:
    notebook = write_notebook(
        tmp_path / "code" / "analysis.ipynb",
        "import sys",
        "print('args', sys.argv[1:])",
        "open('out.txt', 'w').write('ok')",
    )
    lines: list[str] = []
    record = docker_service.run(task(code=notebook.parent, parameters={"n": 3}), on_line=lines.append)
    assert record.state is ExecutionState.SUCCEEDED
    assert record.command == ["python3", "analysis.py", "--n=3"]
    assert "[hyperai] exported notebook to analysis.py" in lines and "args ['--n=3']" in lines
    home = docker_service.workdir(record)
    assert (home / "analysis.ipynb").is_file() and (home / "analysis.py").is_file()
    assert (home / "out.txt").read_text() == "ok"


def test_a_task_takes_its_code_from_an_executions_working_directory(docker_service: GearService) -> None:
    source = docker_service.run(
        task(
            command="mkdir -p src && echo \"print('from the source execution')\" > src/job.py && echo junk > big.bin"
        ),
        on_line=lambda _: None,
    )
    lines: list[str] = []
    promoted = docker_service.run(
        task(code_from=f"{source.id}:src", command="python3 job.py && ls"), on_line=lines.append
    )
    assert "from the source execution" in lines
    assert "big.bin" not in lines  # only the sub-path was taken
    assert promoted.code_source == f"{source.id}:src"
    assert (docker_service.workdir(source) / "src" / "job.py").is_file()  # the source is untouched


@pytest.mark.parametrize(
    ("code_from", "error", "message"),
    [
        pytest.param("promo/9", NotFoundError, "promo/9", id="unknown-execution"),
        pytest.param("promo", ConfigurationError, "not an execution id", id="not-an-id"),
        pytest.param("promo/1:../..", ConfigurationError, "escapes its source", id="escaping-sub-path"),
        pytest.param("promo/1:missing", ConfigurationError, "does not exist", id="missing-sub-path"),
    ],
)
def test_bad_code_references_fail_before_any_container(
    docker_service: GearService, code_from: str, error: type[Exception], message: str
) -> None:
    docker_service.run(task(command="true"), on_line=lambda _: None)
    with pytest.raises(error, match=message):
        docker_service.plan(task(code_from=code_from, command="true"))
    assert len(docker_service.executions()) == 1


def test_code_from_a_running_execution_is_refused(docker_service: GearService) -> None:
    plan = docker_service.plan(task(command="true"))
    record = docker_service.create(plan)  # created, not run: its working directory is not saved
    with pytest.raises(ConflictError, match="only a closed execution.s working directory can be used as code"):
        docker_service.plan(task(code_from=record.id, command="true"))
