"""Pure logic of the models, the catalogs and the container spec (no engine)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from hyperai_provider.core.catalog import Catalogs
from hyperai_provider.core.container import ContainerSpec, MountSpec
from hyperai_provider.core.planner import build_command
from hyperai_provider.core.records import advance
from hyperai_provider.exceptions import ConfigurationError, ConflictError, ImageNotFoundError
from hyperai_provider.models import (
    ComputeType,
    DatasetSource,
    ExecutionRecord,
    ExecutionState,
    WorkdirSource,
    split_execution_id,
)
from hyperai_provider.models.sources import parse_bindings, parse_source
from hyperai_provider.models.spec import ExecutionSpec

CPU = ComputeType(name="cpu", cpus=1, memory="2GiB", disk_quota="1GiB")


def spec(**fields) -> ExecutionSpec:  # type: ignore[no-untyped-def]
    return ExecutionSpec.model_validate({"gear": "g", "image": "python", "command": "true", **fields})


@pytest.mark.parametrize("name", ["bad name", "../etc", "a/b", "", "-lead", "x" * 101])
def test_unsafe_gear_names_are_refused_with_the_rule(name: str) -> None:
    with pytest.raises(ValidationError, match="not a safe identifier"):
        spec(gear=name)


@pytest.mark.parametrize("command", ["", "   ", []])
def test_empty_command_is_refused(command: object) -> None:
    with pytest.raises(ValidationError, match="command is empty"):
        spec(command=command)


@pytest.mark.parametrize(
    "parameters",
    [{"a": [1, 2]}, {"a": {"b": 1}}, {"a": None}, ["x"]],
    ids=["list", "dict", "none", "not-mapping"],
)
def test_parameters_must_be_a_flat_mapping_of_scalars(parameters: object) -> None:
    with pytest.raises(ValidationError, match="flat mapping|mapping of names"):
        spec(parameters=parameters)


def test_unknown_spec_fields_are_rejected() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        spec(comand="typo")


def test_shell_command_gets_quoted_parameters() -> None:
    argv = build_command("python train.py", {"lr": 0.1, "name": "a b", "flag": True})
    assert argv == ["/bin/sh", "-c", "python train.py --lr=0.1 '--name=a b' --flag=true"]


def test_argv_command_gets_parameters_appended() -> None:
    assert build_command(["python", "x.py"], {"epochs": 3}) == ["python", "x.py", "--epochs=3"]


def test_state_machine_refuses_leaving_a_closed_state() -> None:
    record = ExecutionRecord(id="g/1", gear="g", number=1, compute=CPU, image="i")
    record = advance(record, ExecutionState.PREPARING)
    record = advance(record, ExecutionState.RUNNING)
    assert record.started_at is not None
    record = advance(record, ExecutionState.SAVING)
    record = advance(record, ExecutionState.SUCCEEDED)
    assert record.closed and record.ended_at is not None
    assert [change.state for change in record.history][-1] is ExecutionState.SUCCEEDED
    with pytest.raises(ConflictError, match="cannot go from succeeded to running"):
        advance(record, ExecutionState.RUNNING)


def test_record_round_trips_through_json_with_schema_version() -> None:
    record = ExecutionRecord(id="g/1", gear="g", number=1, compute=CPU, image="i", parameters={"a": 1})
    data = record.model_dump_json()
    assert '"schema_version":2' in data
    assert ExecutionRecord.model_validate_json(data) == record


def test_execution_ids() -> None:
    assert split_execution_id("my.gear/12") == ("my.gear", 12)
    for bad in ("nogear", "g/0", "g/x", "/3"):
        with pytest.raises(ValueError, match="not an execution id"):
            split_execution_id(bad)


def test_packaged_compute_catalog_has_hyperai_names(tmp_path: Path) -> None:
    catalog = Catalogs(tmp_path)
    assert {"cpu", "cpu-large", "t4", "rtx-3090", "rtx-4090", "a100"} <= set(catalog.compute_types)
    assert catalog.compute_type("t4").gpus == 1


def test_unknown_compute_type_lists_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"Unknown compute type 'h100'.*cpu, cpu-large"):
        Catalogs(tmp_path).compute_type("h100")


def test_user_catalog_overrides_and_adds(tmp_path: Path) -> None:
    (tmp_path / "compute_types.yaml").write_text(
        "cpu:\n  cpus: 0.5\n  memory: 256MiB\n  disk_quota: 1GiB\ntiny:\n  cpus: 0.25\n  memory: 64MiB\n  disk_quota: 10MiB\n"
    )
    catalog = Catalogs(tmp_path)
    assert catalog.compute_type("cpu").cpus == 0.5
    assert int(catalog.compute_type("tiny").memory) == 64 * 1024**2


def test_invalid_user_catalog_entry_is_reported(tmp_path: Path) -> None:
    (tmp_path / "compute_types.yaml").write_text("cpu:\n  cpus: -1\n  memory: 1GiB\n  disk_quota: 1GiB\n")
    with pytest.raises(ConfigurationError, match="Entry 'cpu'"):
        Catalogs(tmp_path)


def test_images_resolve_catalog_names_and_raw_references(tmp_path: Path) -> None:
    catalog = Catalogs(tmp_path)
    reference, entry = catalog.image("python")
    assert reference == "hyperai/base:bookworm-1" and entry is not None
    assert catalog.image("library/debian:12") == ("library/debian:12", None)
    with pytest.raises(ImageNotFoundError, match="not a catalog name"):
        catalog.image("nonsense")


def test_container_spec_sets_hard_limits_init_and_gpu_request() -> None:
    gpu = ComputeType(name="t4", cpus=1.5, memory="1GiB", gpus=2, disk_quota="1GiB", shm_size="128MiB")
    container = ContainerSpec(
        name="hyperai-g-1",
        image="img",
        command=["true"],
        working_dir="/hyperai/home",
        environment={"A": "1"},
        mounts=(MountSpec("/data", "/hyperai/input/input0", read_only=True),),
        labels={"io.hyperai.execution": "g/1"},
        compute=gpu,
    )
    kwargs = container.create_kwargs()
    assert kwargs["nano_cpus"] == 1_500_000_000
    assert kwargs["mem_limit"] == 1024**3 == kwargs["memswap_limit"]
    assert kwargs["shm_size"] == 128 * 1024**2
    assert kwargs["init"] is True
    (request,) = kwargs["device_requests"]
    assert request["Count"] == 2 and request["Capabilities"] == [["gpu"]]
    (mount,) = kwargs["mounts"]
    assert mount["ReadOnly"] is True and mount["Target"] == "/hyperai/input/input0"


def test_cpu_container_spec_has_no_device_request() -> None:
    container = ContainerSpec("n", "i", ["true"], "/", {}, (), {}, CPU)
    assert "device_requests" not in container.create_kwargs()


def test_binding_values_parse() -> None:
    assert parse_source("dataset:mnist@3/train") == DatasetSource(name="mnist", version=3, sub_path="train")
    assert parse_source("dataset:mnist") == DatasetSource(name="mnist", version="latest")
    assert parse_source("train/4:model") == WorkdirSource(
        execution_id="train/4", gear="train", sub_path="model"
    )
    xcom = {"kind": "workdir", "execution_id": "g/2", "gear": "g", "state": "succeeded", "bytes_stored": 5}
    assert parse_source(xcom).execution_id == "g/2"


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"input5": "g/1"}, "unknown input slot"),
        ({"data": "g/1"}, "unknown input slot"),
        ({"input0": "dataset:x@v2"}, "must be a number"),
        ({"input0": "nonsense"}, "cannot bind"),
        ({"input0": 3}, "cannot bind"),
    ],
)
def test_bad_bindings_are_explained(inputs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_bindings(inputs)


def test_build_spec_turns_validation_errors_into_one_readable_message() -> None:
    from hyperai_provider.models.spec import build_spec

    with pytest.raises(ConfigurationError, match=r"gear: name 'bad name' is not a safe identifier") as caught:
        build_spec(gear="bad name", image="python", command="true")
    assert "Fix the task's arguments" in str(caught.value)
    with pytest.raises(ConfigurationError, match="command is empty"):
        build_spec(gear="g", image="python", command="")
