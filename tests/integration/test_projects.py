"""HyperAI / OpenBayes project folders run unchanged (issue 12), on the real engine.

Through ``hyperai run PATH`` (a subprocess, as a user runs it) and ``GearTaskOperator.from_project``
(through the real ``airflow dags test``): the file ``bayes gear init`` writes, both binding forms,
secret parameters (their value searched for everywhere but the container), ``hyperai restart`` and
``--continue``, a small MNIST in torchvision's layout trained in the PyTorch image and in the TensorFlow
image with metrics reported by ``openbayestool``, and every refusal before any record or container.
"""

from __future__ import annotations

import hashlib
import json
import random
import secrets
import struct
import subprocess
import time
from pathlib import Path

import pytest

from hyperai_provider.core.gears import GearService
from hyperai_provider.exceptions import ConfigurationError
from hyperai_provider.models import ExecutionState
from tests.conftest import PYTORCH_IMAGE, TENSORFLOW_IMAGE, managed_names, run_cli
from tests.system.dagtest import airflow_dags_test

pytestmark = pytest.mark.docker

USER = "alice"  # the service fixture's user; the CLI and Airflow run as her through HYPERAI_USER

# What `bayes gear init` writes (openbayes-cli 0.28's template, its comments left out): the placeholders
# filled with the CLI's defaults, `parallel_count` as the string it substitutes.
BAYES_GEAR_INIT = """\
data_bindings: []
resource: "rtx-4090"
env: "pytorch-2.6-2204"
command: ""
node: 1
parameters: {}
hyper_tuning:
  max_job_count: 0
  parallel_count: "1"
  hyperparameter_metric: ""
  goal: ""
  algorithm: ""
  parameter_specs: []
  side_metrics: []
"""

TORCH_MNIST = """\
import argparse, openbayestool, torch, torchvision
from torch import nn
from torchvision import transforms

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=1)
parser.add_argument("--lr", type=float, default=0.01)
args = parser.parse_args()
torch.manual_seed(0)
train = torchvision.datasets.MNIST(root="/input0", train=True, download=False, transform=transforms.ToTensor())
test = torchvision.datasets.MNIST(root="/input0", train=False, download=False, transform=transforms.ToTensor())
print("samples", len(train), len(test))
model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 13 * 13, 10))
optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
for epoch in range(args.epochs):
    for images, labels in torch.utils.data.DataLoader(train, batch_size=16, shuffle=True):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
model.eval()
with torch.no_grad():
    images, labels = next(iter(torch.utils.data.DataLoader(test, batch_size=len(test))))
    logits = model(images)
    acc = (logits.argmax(1) == labels).float().mean().item()
    test_loss = nn.functional.cross_entropy(logits, labels).item()
openbayestool.log_metric("loss", test_loss)
openbayestool.log_metric("acc", acc)
torch.save(model.state_dict(), "model.pt")
print(f"epochs={args.epochs} acc={acc:.3f} loss={test_loss:.4f}")
"""

KERAS_MNIST = """\
import argparse, os, struct
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np, keras, openbayestool

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=1)
args = parser.parse_args()
raw = os.path.join(os.environ.get("HYPERAI_INPUT0", "/input0"), "MNIST", "raw")

def idx(name):
    with open(os.path.join(raw, name), "rb") as file:
        data = file.read()
    dims = data[3]
    shape = struct.unpack(">" + "I" * dims, data[4 : 4 + 4 * dims])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)

x, y = idx("train-images-idx3-ubyte")[..., None] / 255.0, idx("train-labels-idx1-ubyte")
xt, yt = idx("t10k-images-idx3-ubyte")[..., None] / 255.0, idx("t10k-labels-idx1-ubyte")
print("samples", len(x), len(xt))
keras.utils.set_random_seed(0)
model = keras.Sequential([
    keras.Input((28, 28, 1)),
    keras.layers.Conv2D(8, 3, activation="relu"),
    keras.layers.MaxPooling2D(),
    keras.layers.Flatten(),
    keras.layers.Dense(10, activation="softmax"),
])
model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x, y, epochs=args.epochs, batch_size=16, verbose=0)
loss, acc = model.evaluate(xt, yt, verbose=0)
openbayestool.log_metric("loss", float(loss))
openbayestool.log_metric("acc", float(acc))
model.save("model.keras")
print(f"epochs={args.epochs} acc={acc:.3f} loss={loss:.4f}")
"""

SECRET_PROGRAM = """\
import hashlib, os, sys
value = os.environ["API_KEY"]
print("argv", sys.argv[1:])
print("secret sha256", hashlib.sha256(value.encode()).hexdigest())
open("result.txt", "w").write("done\\n")
"""


def _project(folder: Path, openbayes_yaml: str, files: dict[str, str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "openbayes.yaml").write_text(openbayes_yaml)
    for name, text in (files or {}).items():
        (folder / name).write_text(text)
    return folder


def _hyperai(
    *args: str, storage_root: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    started = time.monotonic()
    completed = run_cli(*args, storage_root=storage_root, env={"HYPERAI_USER": USER, **(env or {})})
    what = f"{args[0]} {Path(args[1]).name if Path(args[1]).exists() else args[1]}"
    print(f"[timing] hyperai {what}: {time.monotonic() - started:.1f} s (rc {completed.returncode})")
    return completed


def write_mnist(root: Path, train: int = 160, test: int = 40, seed: int = 0) -> Path:
    """A tiny MNIST in torchvision's layout (``MNIST/raw/*-idx?-ubyte``): 28x28 noise with a bright block
    whose place says the digit, so that one epoch learns something."""
    rng = random.Random(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, count in (("train", train), ("t10k", test)):
        labels = bytes(index % 10 for index in range(count))
        pixels = bytearray(rng.randrange(0, 40) for _ in range(count * 28 * 28))
        for index, label in enumerate(labels):
            row, column = divmod(label, 5)
            for y in range(2 + row * 13, 12 + row * 13):
                for x in range(1 + column * 5, 5 + column * 5):
                    pixels[index * 784 + y * 28 + x] = 255
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, count, 28, 28) + pixels)
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, count) + labels)
    return root


@pytest.fixture
def mnist(service: GearService, tmp_path: Path) -> str:
    """Dataset version ``mnist-mini/1`` holding the tiny MNIST."""
    service.datasets.create("mnist-mini")
    service.datasets.add_version_from_dir("mnist-mini", write_mnist(tmp_path / "mnist-data"))
    return "mnist-mini/1"


def _dag_file(dags: Path, dag_id: str, project: Path, gear: str) -> None:
    dags.mkdir(exist_ok=True)
    (dags / f"{dag_id}.py").write_text(
        "from airflow.sdk import DAG\n"
        "from hyperai_provider.operators import GearTaskOperator\n\n"
        f"with DAG({dag_id!r}, schedule=None, catchup=False):\n"
        f"    GearTaskOperator.from_project({str(project)!r}, task_id='train', gear={gear!r})\n"
    )


def _files_holding(value: str, *roots: Path) -> list[str]:
    """Every file under ``roots`` whose bytes contain ``value``."""
    needle = value.encode()
    found = []
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                try:
                    if needle in path.read_bytes():
                        found.append(str(path))
                except OSError:
                    continue
    return found


def _execution_page(storage_root: Path, execution_id: str, tmp_path: Path) -> str:
    """The web UI's execution page as its owner sees it, rendered in-process by the provider's app (the
    caller given by overriding the auth dependency, as tests/adversarial/test_access.py does: this test
    process must not open the session's Airflow database beside the ``airflow dags test`` runs)."""
    from fastapi.testclient import TestClient

    from hyperai_provider.core.settings import HyperAISettings
    from hyperai_provider.plugins import deps
    from hyperai_provider.plugins.app import create_app

    server = GearService(HyperAISettings(storage_root=storage_root, user="airflow-server"))
    app = create_app()
    app.dependency_overrides[deps.airflow_user_name] = lambda: USER
    app.dependency_overrides[deps.gear_service] = lambda: server
    try:
        with TestClient(app) as client:
            page = client.get(f"/executions/{execution_id}")
    finally:
        server.backend.close()
    assert page.status_code == 200, page.text
    return page.text


# -- the file bayes gear init writes, both binding forms ------------------------------------------------


def test_the_file_bayes_gear_init_writes_loads_and_runs(
    service: GearService, storage_root: Path, pytorch_image: str, tmp_path: Path
) -> None:
    from hyperai_provider.core.project import load_project

    project = _project(
        tmp_path / "my-first-gear",
        BAYES_GEAR_INIT,
        {"main.py": "import sys, torch\nprint('torch', torch.__version__.split('+')[0], sys.argv[1:])\n"},
    )
    loaded = load_project(project)
    assert (loaded.compute_type, loaded.image, loaded.command, loaded.node) == (
        "rtx-4090",
        "pytorch-2.6-2204",
        None,
        1,
    )
    assert loaded.hyper_tuning is not None and not loaded.tuning and loaded.hyper_tuning.parallel_count == 1

    # as `bayes gear run task -r cpu -- python main.py`: no GPU here, and the template's command is empty
    completed = _hyperai(
        "run", str(project), "--compute-type", "cpu", "--", "python", "main.py", storage_root=storage_root
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "torch 2.14.1 []" in completed.stdout
    record = service.get("my-first-gear/1")
    assert record.state is ExecutionState.SUCCEEDED and record.image == pytorch_image == PYTORCH_IMAGE
    assert record.compute.name == "cpu" and record.command == ["/bin/sh", "-c", "python main.py"]

    without_command = _hyperai("run", str(project), "--compute-type", "cpu", storage_root=storage_root)
    assert without_command.returncode == 1 and "sets no command" in without_command.stderr
    assert "-- python main.py" in without_command.stderr


@pytest.mark.parametrize(
    "bindings",
    [
        pytest.param(
            "data_bindings:\n"
            "  - {data: alice/numbers/1, path: /input0, type: ro}\n"
            "  - {name: numbers/1, path: /openbayes/input/input1}\n"
            "  - {data: numbers-gear/1/output, path: /output, type: rw}\n",
            id="data_bindings",
        ),
        pytest.param(
            "bindings:\n  - alice/numbers/1:/input0\n  - numbers/1:/input1:ro\n  - numbers-gear/1/output:/output:rw\n",
            id="short-bindings",
        ),
    ],
)
def test_both_binding_forms_bind_inputs_and_continue_from_an_output(
    service: GearService, storage_root: Path, base_image: str, tmp_path: Path, bindings: str
) -> None:
    data = tmp_path / "numbers"
    data.mkdir()
    (data / "n.txt").write_text("42\n")
    service.datasets.create("numbers")
    service.datasets.add_version_from_dir("numbers", data)
    first = _project(tmp_path / "numbers-gear", "env: python\ncommand: echo first > from-parent.txt\n")
    assert _hyperai("run", str(first), storage_root=storage_root).returncode == 0

    command = "cat /input0/n.txt /openbayes/input/input1/n.txt /openbayes/home/from-parent.txt; touch /input0/x || echo read-only"
    second = _project(tmp_path / "second", f"env: python\ncommand: {command!r}\n{bindings}")
    completed = _hyperai("run", str(second), storage_root=storage_root)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert (
        completed.stdout.count("42") == 2 and "first" in completed.stdout and "read-only" in completed.stdout
    )
    record = service.get("second/1")
    assert record.parent == "numbers-gear/1"
    assert {binding.slot for binding in record.inputs} == {"input0", "input1"}


# -- secret parameters ------------------------------------------------------------------------------------


@pytest.mark.airflow
def test_secret_parameters_appear_nowhere_but_the_containers_environment(
    service: GearService, storage_root: Path, base_image: str, airflow_home: Path, tmp_path: Path
) -> None:
    value = "s3cret-" + secrets.token_hex(16)
    digest = hashlib.sha256(value.encode()).hexdigest()
    project = _project(
        tmp_path / "secret-project",
        "env: python\ncommand: python3 main.py\nparameters:\n  epochs: 2\n"
        "  API_KEY: {is_secret: true, source: env, env: MY_API_KEY}\n",
        {"main.py": SECRET_PROGRAM},
    )

    # hyperai run: from this shell's environment
    completed = _hyperai("run", str(project), "--json", storage_root=storage_root, env={"MY_API_KEY": value})
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert f"secret sha256 {digest}" in completed.stdout  # the container had it
    assert "argv ['--epochs=2']" in completed.stdout  # never on the command line
    cli_record = service.get("secret-project/1")
    assert cli_record.secret_names == ["API_KEY"] and cli_record.parameters == {"epochs": 2}

    # from_project under Airflow: read from the worker's environment when the task runs; without it the
    # task fails before any record or container exists
    dags = tmp_path / "dags"
    _dag_file(dags, "projects_secret", project, "secret-airflow")
    env = {"HYPERAI_USER": USER}
    missing = airflow_dags_test("projects_secret", airflow_home, dags, storage_root, env=env)
    assert missing.returncode != 0 and "MY_API_KEY" in missing.output and "have no value" in missing.output
    assert [r.id for r in service.executions()] == ["secret-project/1"] and not managed_names(storage_root)
    run = airflow_dags_test(
        "projects_secret", airflow_home, dags, storage_root, env={**env, "MY_API_KEY": value}
    )
    assert run.returncode == 0, run.output[-4000:]
    assert f"secret sha256 {digest}" in run.output
    xcom = run.xcom("projects_secret", "train")
    airflow_record = service.get(xcom["execution_id"])
    assert airflow_record.secret_names == ["API_KEY"] and airflow_record.state is ExecutionState.SUCCEEDED

    # the value is nowhere: CLI output, records and store, output.log, params files, working directories,
    # Airflow's database (XCom, rendered fields, serialized DAG), task logs, the web UI's pages
    assert value not in completed.stdout + completed.stderr and value not in run.output
    for record in (cli_record, airflow_record):
        assert value not in record.model_dump_json()
        home = service.workdir(record)
        assert json.loads((home / "openbayes_params.json").read_text()) == {"epochs": 2}
        assert value not in _execution_page(storage_root, record.id, tmp_path)
    assert _files_holding(value, storage_root, airflow_home) == []


# -- restart and --continue ----------------------------------------------------------------------------------


def test_restart_and_continue_carry_on_from_an_execution(
    service: GearService, storage_root: Path, base_image: str, tmp_path: Path
) -> None:
    program = (
        "import os, sys\n"
        "line = ' '.join(sys.argv[1:]) + ' secret=' + str(len(os.environ.get('TOKEN', '')))\n"
        "open('history.txt', 'a').write(line + '\\n')\n"
        "print(open('history.txt').read().strip().replace('\\n', ' | '))\n"
    )
    project = _project(
        tmp_path / "carry-on",
        "env: python\ncommand: python3 main.py\nparameters:\n  epochs: 1\n"
        "  TOKEN: {is_secret: true, source: env, env: TOKEN}\n",
        {"main.py": program},
    )
    env = {"TOKEN": "abc"}
    assert _hyperai("run", str(project), storage_root=storage_root, env=env).returncode == 0

    restarted = _hyperai(
        "restart",
        "carry-on/1",
        "--param",
        "epochs=5",
        "--param",
        "lr=0.1",
        storage_root=storage_root,
        env=env,
    )
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    assert "--epochs=1 secret=3 | --epochs=5 --lr=0.1 secret=3" in restarted.stdout  # streamed
    second = service.get("carry-on/2")
    assert second.parent == "carry-on/1" and second.parameters == {"epochs": 5, "lr": 0.1}
    assert second.command[-1] == "python3 main.py --epochs=5 --lr=0.1" and second.secret_names == ["TOKEN"]

    bob = _hyperai("restart", "carry-on/1", storage_root=storage_root, env={**env, "HYPERAI_USER": "bob"})
    assert bob.returncode == 3 and "does not exist" in bob.stderr  # another user's private gear
    no_secret = _hyperai("restart", "carry-on/2", storage_root=storage_root, env={"TOKEN": ""})
    assert no_secret.returncode == 1 and "TOKEN" in no_secret.stderr and "have no value" in no_secret.stderr

    continued = _hyperai(
        "run",
        str(project),
        "--continue",
        "carry-on/2",
        "--param",
        "epochs=7",
        storage_root=storage_root,
        env=env,
    )
    assert continued.returncode == 0, continued.stdout + continued.stderr
    assert "--epochs=5 --lr=0.1 secret=3 | --epochs=7 secret=3" in continued.stdout
    third = service.get("carry-on/3")
    assert third.parent == "carry-on/2" and third.parameters == {"epochs": 7}

    shown = _hyperai(
        "restart",
        "carry-on/3",
        "--command",
        "wc -l < history.txt; echo parameters:",
        "--json",
        storage_root=storage_root,
        env=env,
    )
    assert shown.returncode == 0 and "\n3\nparameters: --epochs=7\n" in shown.stdout, shown.stdout
    assert json.loads(shown.stdout[shown.stdout.index("{") :])["parent"] == "carry-on/3"


# -- training in the framework images ------------------------------------------------------------------


def _metrics(service: GearService, execution_id: str) -> dict[str, float]:
    return service.store.metrics.last_values(execution_id)


def test_pytorch_project_trains_mnist_from_input0_and_reports_metrics(
    service: GearService, storage_root: Path, pytorch_image: str, mnist: str, tmp_path: Path
) -> None:
    project = _project(
        tmp_path / "torch-mnist",
        f"resource: cpu\nenv: pytorch-2.6-2204\ncommand: python train.py\nnode: 1\n"
        f"parameters:\n  epochs: 1\n  lr: 0.01\ndata_bindings:\n  - {{data: {mnist}, path: /input0, type: ro}}\n",
        {"train.py": TORCH_MNIST},
    )
    started = time.monotonic()
    completed = _hyperai("run", str(project), storage_root=storage_root)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    record = service.get("torch-mnist/1")
    print(
        f"[timing] pytorch MNIST: {time.monotonic() - started:.1f} s total, container {record.duration_seconds:.1f} s"
    )
    assert record.image == pytorch_image and "samples 160 40" in completed.stdout
    assert (service.workdir(record) / "model.pt").stat().st_size > 0
    metrics = _metrics(service, record.id)
    print(f"[result] pytorch MNIST metrics in the store: {metrics}")
    assert set(metrics) == {"acc", "loss"} and 0.0 <= metrics["acc"] <= 1.0 and metrics["loss"] > 0
    assert f"acc={metrics['acc']:.3f}" in completed.stdout


@pytest.mark.airflow
def test_keras_project_trains_mnist_through_from_project_and_reports_metrics(
    service: GearService,
    storage_root: Path,
    tensorflow_image: str,
    mnist: str,
    airflow_home: Path,
    tmp_path: Path,
) -> None:
    project = _project(
        tmp_path / "keras-mnist",
        f"resource: cpu\nenv: tensorflow-2.15-2204\ncommand: python train.py\n"
        f"parameters:\n  epochs: 1\nbindings:\n  - {mnist}:/input0\n",
        {"train.py": KERAS_MNIST},
    )
    dags = tmp_path / "dags"
    _dag_file(dags, "projects_keras", project, "keras-mnist")
    started = time.monotonic()
    run = airflow_dags_test("projects_keras", airflow_home, dags, storage_root, env={"HYPERAI_USER": USER})
    assert run.returncode == 0, run.output[-4000:]
    record = service.get(run.xcom("projects_keras", "train")["execution_id"])
    print(
        f"[timing] keras MNIST via airflow dags test: {time.monotonic() - started:.1f} s total, container {record.duration_seconds:.1f} s"
    )
    assert record.image == tensorflow_image == TENSORFLOW_IMAGE and "samples 160 40" in run.output
    assert (service.workdir(record) / "model.keras").stat().st_size > 0
    metrics = _metrics(service, record.id)
    print(f"[result] keras MNIST metrics in the store: {metrics}")
    assert set(metrics) == {"acc", "loss"} and 0.0 <= metrics["acc"] <= 1.0


# -- refused before anything exists -------------------------------------------------------------------------

STUDY = """\
hyper_tuning:
  max_job_count: 3
  parallel_count: 1
  hyperparameter_metric: acc
  goal: MAXIMIZE
  algorithm: Grid
  parameter_specs:
    - {name: lr, type: DISCRETE, discrete_values: [0.1, 0.01]}
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("data_binding: []\n", "data_binding (did you mean data_bindings?)", id="misspelt-key"),
        pytest.param(
            "hyper_tuning:\n  max_job_cont: 2\n",
            "max_job_cont (did you mean max_job_count?)",
            id="misspelt-nested-key",
        ),
        pytest.param("node: 2\n", "multi-node", id="node-2"),
        pytest.param("bindings: ['numbers/1:/input0:rw']\n", "bound read-write", id="rw-input"),
        pytest.param(STUDY, "studies are not supported here yet", id="study"),
        pytest.param(
            STUDY.replace("DISCRETE, discrete_values: [0.1, 0.01]", "DOUBLE, min_value: 0.1, max_value: 1"),
            "Grid takes DISCRETE and CATEGORICAL specs only",
            id="grid-with-a-range",
        ),
        pytest.param(
            "parameters:\n  KEY: {is_secret: true, source: env, env: HYPERAI_TEST_UNSET}\n",
            "have no value",
            id="missing-secret",
        ),
    ],
)
def test_bad_projects_are_refused_before_any_record_or_container(
    service: GearService, storage_root: Path, base_image: str, tmp_path: Path, text: str, message: str
) -> None:
    project = _project(tmp_path / "refused", f"env: python\ncommand: 'echo ran'\n{text}")
    completed = _hyperai("run", str(project), storage_root=storage_root, env={"HYPERAI_TEST_UNSET": ""})
    assert completed.returncode == 1 and message in completed.stderr, completed.stderr
    assert "ran" not in completed.stdout and service.executions() == [] and not managed_names(storage_root)
    if "have no value" not in message:  # from_project refuses when the DAG is parsed; a secret when it runs
        from hyperai_provider.operators import GearTaskOperator

        with pytest.raises(
            ConfigurationError, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")
        ):
            GearTaskOperator.from_project(project, task_id="train")


def test_a_study_runs_once_when_asked_to_ignore_it(
    service: GearService, storage_root: Path, base_image: str, tmp_path: Path
) -> None:
    from hyperai_provider.operators import GearTaskOperator

    project = _project(
        tmp_path / "study", f"env: python\ncommand: 'echo ran'\nparameters: {{lr: 0.5}}\n{STUDY}"
    )
    completed = _hyperai("run", str(project), storage_root=storage_root)
    assert "hyperai run" in completed.stderr and "--no-tuning" in completed.stderr
    once = _hyperai("run", str(project), "--no-tuning", storage_root=storage_root)
    assert once.returncode == 0 and "ran --lr=0.5" in once.stdout
    task = GearTaskOperator.from_project(project, task_id="train", ignore_hyper_tuning=True)
    assert task.parameters == {"lr": 0.5}
