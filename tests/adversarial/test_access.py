"""Another user's data (issue 11): nobody reaches a gear or dataset they may not see, and nobody changes
what they do not own, whichever way they name it.

Each used to get through: Bob read Alice's private working directory by naming it (`continue_from`,
`continue_from="latest"`, `code="alice-gear/1"`, an input binding) and his executions were then created
inside her gear; datasets had no owners (anyone added versions to, deleted versions of, or deleted any
dataset) and no visibility; the web UI's "Create dataset version" acted as the api-server's process
user. Every refusal below happens before any record, gear, working directory or container exists.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hyperai_provider.core.gears import GearService
from hyperai_provider.core.settings import HyperAISettings
from hyperai_provider.exceptions import ConflictError, HyperAIError, NotFoundError
from hyperai_provider.models import ExecutionState, Visibility
from hyperai_provider.models.spec import build_spec
from tests.conftest import managed_names, run_cli

pytestmark = pytest.mark.docker

SECRET = "alice-secret-7f3a"
AS_BOB = {"HYPERAI_USER": "bob"}
AS_ALICE = {"HYPERAI_USER": "alice"}


def quiet(_: str) -> None:
    pass


def spec(service: GearService, gear: str, inputs: dict[str, object] | None = None, **fields: object):  # type: ignore[no-untyped-def]
    return build_spec(
        gear=gear,
        image="hyperai/base:bookworm-1",
        compute_type="cpu",
        inputs=service.bindings_from(inputs or {}),
        **{"command": "cat secret.txt", **fields},
    )


@pytest.fixture
def bob(docker_service: GearService, storage_root: Path) -> Iterator[GearService]:
    """A second user on the same storage root and store."""
    other = GearService(HyperAISettings(storage_root=storage_root, user="bob"))
    yield other
    other.backend.close()


@pytest.fixture
def alice_gear(docker_service: GearService) -> str:
    """Alice's private gear with one closed execution holding a secret (also under sub/)."""
    record = docker_service.run(
        spec(
            docker_service,
            "alice-gear",
            command=f"echo {SECRET} > secret.txt && mkdir sub && cp secret.txt sub/",
        ),
        on_line=quiet,
    )
    assert record.state is ExecutionState.SUCCEEDED
    assert docker_service.store.get_gear("alice-gear").visibility is Visibility.PRIVATE
    return record.id


class Snapshot:
    """What exists: execution rows, gear rows, gear folders and containers of this storage root."""

    def __init__(self, service: GearService) -> None:
        self.service = service
        self.before = self.now()

    def now(self) -> tuple[set[str], set[str], set[str], set[str]]:
        service = self.service
        gears_dir = service.storage.root / "gears"
        folders = {p.name for p in gears_dir.iterdir()} if gears_dir.is_dir() else set()
        return (
            {record.id for record in service.store.list_executions()},
            {gear.name for gear in service.store.list_gears()},
            folders,
            managed_names(service.settings.storage_root),
        )

    def unchanged(self) -> None:
        assert self.now() == self.before, "a refused request left a record, gear, folder or container behind"


def refused(bob: GearService, request: Any, kind: type[HyperAIError], match: str) -> HyperAIError:
    """``request`` is refused by planning and by running, leaving nothing behind and leaking nothing."""
    snapshot = Snapshot(bob)
    lines: list[str] = []
    with pytest.raises(kind, match=match) as plan_error:
        bob.plan(request)
    with pytest.raises(kind, match=match) as run_error:
        bob.run(request, on_line=lines.append)
    snapshot.unchanged()
    for error in (plan_error.value, run_error.value):
        assert SECRET not in f"{error.headline} {error.hint}"
    assert not any(SECRET in line for line in lines)
    return run_error.value


# -- reading a private gear by name --------------------------------------------------------------------------


READS_BY_NAME = [
    pytest.param({"gear": "bob-gear", "continue_from": "alice-gear/1"}, id="continue_from-into-own-gear"),
    pytest.param({"gear": "bob-gear", "code_from": "alice-gear/1"}, id="code_from"),
    pytest.param({"gear": "bob-gear", "code_from": "alice-gear/1:sub"}, id="code_from-sub-path"),
    pytest.param({"gear": "bob-gear", "inputs": {"input0": "alice-gear/1"}}, id="input-binding"),
    pytest.param({"gear": "bob-gear", "inputs": {"input0": "alice-gear/1:sub"}}, id="input-binding-sub-path"),
]


def _renamed(value: Any, gear: str) -> Any:
    """``value`` with 'alice-gear' replaced by ``gear`` wherever it names something."""
    if isinstance(value, dict):
        return {key: _renamed(item, gear) for key, item in value.items()}
    return value.replace("alice-gear", gear) if isinstance(value, str) else value


def _request(service: GearService, fields: dict[str, Any]):  # type: ignore[no-untyped-def]
    fields = dict(fields)
    return spec(service, fields.pop("gear"), fields.pop("inputs", None), **fields)


@pytest.mark.parametrize("fields", READS_BY_NAME)
def test_a_private_working_directory_named_by_another_user_does_not_exist(
    docker_service: GearService, bob: GearService, alice_gear: str, fields: dict[str, Any]
) -> None:
    error = refused(bob, _request(bob, fields), NotFoundError, "does not exist")
    # the very answer an execution that never existed gets: no oracle for private names, no owner named
    with pytest.raises(NotFoundError) as never:
        bob.plan(_request(bob, _renamed(fields, "nobody-gear")))
    assert error.headline == never.value.headline.replace("nobody-gear", "alice-gear")
    assert error.hint == never.value.hint.replace("nobody-gear", "alice-gear")


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({}, id="new-execution"),
        pytest.param({"continue_from": "alice-gear/1"}, id="continue_from"),
        pytest.param({"continue_from": "latest"}, id="continue_from-latest"),
        pytest.param({"code_from": "alice-gear/1"}, id="code_from"),
    ],
)
@pytest.mark.parametrize("visibility", [Visibility.PRIVATE, Visibility.PUBLIC])
def test_nobody_creates_executions_in_another_users_gear(
    docker_service: GearService,
    bob: GearService,
    alice_gear: str,
    visibility: Visibility,
    fields: dict[str, Any],
) -> None:
    docker_service.access().set_visibility("alice-gear", visibility)
    error = refused(
        bob, spec(bob, "alice-gear", **fields), ConflictError, "executions run only in their owner's gear"
    )
    assert "of your own" in error.hint
    if visibility is Visibility.PRIVATE:  # its name is taken, but whose it is stays private
        assert "alice'" not in error.headline and "another user" in error.headline
    assert [r.id for r in docker_service.executions("alice-gear")] == [alice_gear]


def test_a_public_gear_is_readable_by_others_but_runs_stay_in_their_own_gear(
    docker_service: GearService, bob: GearService, alice_gear: str
) -> None:
    docker_service.access().set_visibility("alice-gear", Visibility.PUBLIC)
    lines: list[str] = []
    record = bob.run(
        spec(bob, "bob-gear", {"input0": alice_gear}, command="cat /hyperai/input/input0/secret.txt"),
        on_line=lines.append,
    )
    assert record.gear == "bob-gear" and record.owner == "bob" and SECRET in lines
    assert bob.store.get_gear("bob-gear").owner == "bob"
    assert bob.plan(spec(bob, "bob-gear", continue_from=alice_gear)).parent is not None  # reading is allowed
    with pytest.raises(ConflictError, match="only its owner"):
        bob.access().set_visibility("alice-gear", Visibility.PRIVATE)
    assert managed_names(docker_service.settings.storage_root) == set()


def test_the_cli_refuses_another_users_private_gear(
    docker_service: GearService, alice_gear: str, storage_root: Path, tmp_path: Path
) -> None:
    snapshot = Snapshot(docker_service)
    project = tmp_path / "project"
    project.mkdir()
    (project / "openbayes.yaml").write_text(
        "env: hyperai/base:bookworm-1\nresource: cpu\ncommand: cat secret.txt\nbindings: ['alice-gear/1/output:/output']\n"
    )
    continued = run_cli("run", str(project), "--gear", "bob-gear", storage_root=storage_root, env=AS_BOB)
    assert continued.returncode == 3 and "does not exist" in continued.stderr, continued.stderr
    assert SECRET not in continued.stdout + continued.stderr
    for command in (["show", alice_gear], ["download", alice_gear, str(tmp_path / "out")]):
        shown = run_cli(*command, storage_root=storage_root, env=AS_BOB)
        assert shown.returncode == 3 and "does not exist" in shown.stderr, shown.stderr
    deleted = run_cli("delete", alice_gear, "--yes", storage_root=storage_root, env=AS_BOB)
    assert deleted.returncode == 3 and "does not exist" in deleted.stderr, deleted.stderr
    gear_deleted = run_cli("delete-gear", "alice-gear", "--yes", storage_root=storage_root, env=AS_BOB)
    assert gear_deleted.returncode == 3, gear_deleted.stderr
    snapshot.unchanged()
    assert not (tmp_path / "out").exists()
    assert (
        docker_service.workdir(docker_service.get(alice_gear)) / "secret.txt"
    ).read_text() == f"{SECRET}\n"


# -- datasets --------------------------------------------------------------------------------------------------


@pytest.fixture
def alice_data(docker_service: GearService, tmp_path: Path) -> dict[str, Path]:
    """Alice's private dataset 'alice-data' and public 'alice-pub', one version each."""
    folders = {}
    for name, visibility in (("alice-data", Visibility.PRIVATE), ("alice-pub", Visibility.PUBLIC)):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "rows.csv").write_text(f"{name},{SECRET}\n")
        docker_service.datasets.create(name, visibility=visibility)
        docker_service.datasets.add_version_from_dir(name, folder)
        folders[name] = docker_service.storage.dataset_version_dir(name, 1)
    return folders


def _state(service: GearService) -> dict[str, Any]:
    """Every dataset with its owner, visibility and versions, and any partial version left in tmp/."""
    store = service.store
    tmp = service.storage.root / "tmp"
    return {
        "datasets": {
            d.name: (d.owner, d.visibility, [v.version for v in store.list_dataset_versions(d.name)])
            for d in store.list_datasets()
        },
        "tmp": sorted(p.name for p in tmp.glob("dataset-*")) if tmp.is_dir() else [],  # partial versions
    }


def test_another_users_private_dataset_cannot_be_seen_changed_or_bound(
    docker_service: GearService, bob: GearService, alice_data: dict[str, Path], tmp_path: Path
) -> None:
    before = _state(docker_service)
    upload = tmp_path / "upload"
    upload.mkdir()
    (upload / "evil.csv").write_text("overwritten\n")
    mine = bob.run(spec(bob, "bob-gear", command="echo mine > mine.txt"), on_line=quiet)
    ds = bob.datasets
    assert "alice-data" not in {d.name for d in ds.all()}
    attempts = {
        "get": lambda: ds.get("alice-data"),
        "versions": lambda: ds.versions("alice-data"),
        "add from dir": lambda: ds.add_version_from_dir("alice-data", upload),
        "add from execution": lambda: ds.add_version_from_execution("alice-data", mine.id),
        "delete version": lambda: ds.delete_version("alice-data", 1),
        "delete": lambda: ds.delete("alice-data"),
        "make public": lambda: ds.set_visibility("alice-data", Visibility.PUBLIC),
        "ensure (hijack the name)": lambda: ds.ensure("alice-data"),
        "create (same name)": lambda: ds.create("alice-data"),
    }
    for what, attempt in attempts.items():
        with pytest.raises((NotFoundError, ConflictError)) as error:
            attempt()
        assert SECRET not in error.value.headline, what
        if what != "create (same name)":
            assert isinstance(error.value, NotFoundError) and "does not exist" in error.value.headline, what
    snapshot = Snapshot(bob)
    for source in ("dataset:alice-data@latest", "dataset:alice-data@1", "dataset:alice-data@1/rows.csv"):
        refused(
            bob,
            spec(bob, "bob-gear", {"input0": source}, command="cat /hyperai/input/input0/rows.csv"),
            NotFoundError,
            "does not exist",
        )
    snapshot.unchanged()
    after = _state(docker_service)
    assert after["datasets"] == {**before["datasets"]} and after["tmp"] == before["tmp"]
    assert (alice_data["alice-data"] / "rows.csv").read_text() == f"alice-data,{SECRET}\n"


def test_a_public_dataset_is_listed_and_bound_by_others_but_changed_only_by_its_owner(
    docker_service: GearService, bob: GearService, alice_data: dict[str, Path], tmp_path: Path
) -> None:
    upload = tmp_path / "upload"
    upload.mkdir()
    (upload / "evil.csv").write_text("overwritten\n")
    ds = bob.datasets
    assert {d.name for d in ds.all()} == {"alice-pub"}
    assert [v.version for v in ds.versions("alice-pub")] == [1]
    lines: list[str] = []
    read = bob.run(
        spec(
            bob,
            "bob-gear",
            {"input0": "dataset:alice-pub@latest"},
            command="cat /hyperai/input/input0/rows.csv",
        ),
        on_line=lines.append,
    )
    assert read.state is ExecutionState.SUCCEEDED and f"alice-pub,{SECRET}" in lines
    before = _state(docker_service)
    changes = {
        "add from dir": lambda: ds.add_version_from_dir("alice-pub", upload),
        "add from execution": lambda: ds.add_version_from_execution("alice-pub", read.id),
        "delete version": lambda: ds.delete_version("alice-pub", 1),
        "delete": lambda: ds.delete("alice-pub"),
        "make private": lambda: ds.set_visibility("alice-pub", Visibility.PRIVATE),
    }
    for what, change in changes.items():
        with pytest.raises(ConflictError, match="only its owner") as error:
            change()
        assert "alice" in error.value.headline, what  # a visible dataset's owner is no secret
    assert _state(docker_service) == before
    # only the owner changes visibility: made private, Bob no longer sees or binds it
    docker_service.datasets.set_visibility("alice-pub", Visibility.PRIVATE)
    assert ds.all() == []
    refused(bob, spec(bob, "bob-gear", {"input0": "dataset:alice-pub@1"}), NotFoundError, "does not exist")
    assert managed_names(docker_service.settings.storage_root) == set()


def test_the_cli_acts_as_its_user_on_datasets(
    docker_service: GearService, alice_data: dict[str, Path], storage_root: Path, tmp_path: Path
) -> None:
    before = _state(docker_service)
    upload = tmp_path / "upload"
    upload.mkdir()
    (upload / "evil.csv").write_text("overwritten\n")
    listed = run_cli("datasets", "--json", storage_root=storage_root, env=AS_BOB)
    assert listed.returncode == 0, listed.stderr
    assert '"alice-pub"' in listed.stdout and '"alice-data"' not in listed.stdout
    for name, code, words in (("alice-data", 3, "does not exist"), ("alice-pub", 4, "only its owner")):
        for command in (
            ["dataset", "delete", name, "--yes"],
            ["dataset", "version", "delete", name, "1", "--yes"],
            ["dataset", "version", "add", name, str(upload)],
            ["dataset", "visibility", name, "private" if name == "alice-pub" else "public"],
        ):
            result = run_cli(*command, storage_root=storage_root, env=AS_BOB)
            assert result.returncode == code and words in result.stderr, (command, result.stderr)
    project = tmp_path / "project"
    project.mkdir()
    (project / "openbayes.yaml").write_text(
        "env: hyperai/base:bookworm-1\nresource: cpu\ncommand: cat /hyperai/input/input0/rows.csv\n"
        "bindings: ['alice-data/1:/input0']\n"
    )
    snapshot = Snapshot(docker_service)
    bound = run_cli("run", str(project), "--gear", "bob-gear", storage_root=storage_root, env=AS_BOB)
    assert bound.returncode == 3 and "does not exist" in bound.stderr, bound.stdout + bound.stderr
    assert SECRET not in bound.stdout + bound.stderr
    snapshot.unchanged()
    assert _state(docker_service) == before
    # the owner, through the same CLI, can
    deleted = run_cli("dataset", "delete", "alice-data", "--yes", storage_root=storage_root, env=AS_ALICE)
    assert deleted.returncode == 0, deleted.stderr
    assert not alice_data["alice-data"].exists()


# -- the web UI acts as the caller ----------------------------------------------------------------------------


@pytest.fixture
def web(docker_service: GearService, storage_root: Path) -> Iterator[tuple[Any, dict[str, str], GearService]]:
    """The HyperAI app in-process: its service is the api-server's own (process user 'airflow-server'), the
    caller is whoever ``caller['user']`` names (the auth dependency overridden)."""
    from fastapi.testclient import TestClient

    from hyperai_provider.plugins import deps
    from hyperai_provider.plugins.app import create_app

    server = GearService(HyperAISettings(storage_root=storage_root, user="airflow-server"))
    caller = {"user": "alice"}
    app = create_app()
    app.dependency_overrides[deps.airflow_user_name] = lambda: caller["user"]
    app.dependency_overrides[deps.gear_service] = lambda: server
    with TestClient(app) as client:
        yield client, caller, server
    server.backend.close()


def test_create_dataset_version_in_the_web_ui_acts_as_the_caller(
    docker_service: GearService,
    bob: GearService,
    alice_gear: str,
    alice_data: dict[str, Path],
    web: tuple[Any, dict[str, str], GearService],
) -> None:
    client, caller, server = web
    mine = bob.run(spec(bob, "bob-gear", command="echo mine > mine.txt"), on_line=quiet)
    url = "/api/executions/{}/dataset-version"

    caller["user"] = "alice"
    made = client.post(url.format(alice_gear), data={"dataset": "alice-models"})
    assert made.status_code == 200, made.text
    models = docker_service.datasets.get("alice-models")
    assert models.owner == "alice" and models.visibility is Visibility.PRIVATE
    assert [v.version for v in docker_service.datasets.versions("alice-models")] == [1]
    version = docker_service.storage.dataset_version_dir("alice-models", 1)
    assert (version / "secret.txt").read_text() == f"{SECRET}\n"
    again = client.post(url.format(alice_gear), data={"dataset": "alice-data"})  # her existing dataset
    assert again.status_code == 200, again.text
    assert [v.version for v in docker_service.datasets.versions("alice-data")] == [1, 2]
    assert "airflow-server" not in {d.owner for d in server.store.list_datasets()}

    before = _state(docker_service)
    caller["user"] = "bob"
    for execution, dataset in (
        (alice_gear, "bob-copy"),  # alice's private execution
        (mine.id, "alice-data"),  # bob's own execution into alice's private dataset
        (mine.id, "alice-models"),
    ):
        response = client.post(url.format(execution), data={"dataset": dataset})
        assert response.status_code == 404, (execution, dataset, response.text)
        assert SECRET not in response.text
    public = client.post(url.format(mine.id), data={"dataset": "alice-pub"})
    assert public.status_code == 409 and "only its owner" in public.json()["detail"]
    listed = client.get("/api/datasets")
    assert listed.status_code == 200 and {d["name"] for d in listed.json()} == {"alice-pub"}
    assert client.get("/datasets/alice-data").status_code == 404
    assert _state(docker_service) == before
    assert "airflow-server" not in {d.owner for d in server.store.list_datasets()}
