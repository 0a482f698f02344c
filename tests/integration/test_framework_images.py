"""The offline-built framework images train for real in Gear executions (issue 12).

Each test runs through ``GearService.run`` with the HyperAI runtime name a ``bayes`` user writes
(``pytorch-2.6-2204``, ``tensorflow-2.15-2204``): the alias rule picks our image, and the program runs
with ``python`` as HyperAI's images run it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hyperai_provider.core.gears import GearService
from hyperai_provider.models import ExecutionState
from hyperai_provider.models.spec import build_spec
from tests.conftest import PYTORCH_IMAGE, TENSORFLOW_IMAGE

pytestmark = pytest.mark.docker

TORCH_JOB = """\
import openbayestool, torch, torchvision
print("cuda available:", torch.cuda.is_available())
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(144, 2))
images, labels = torch.randn(8, 1, 8, 8), torch.randint(0, 2, (8,))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
losses = []
for _ in range(5):
    optimizer.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(images), labels)
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
grad = model[0].weight.grad
print("conv grad", tuple(grad.shape), bool(grad.abs().sum() > 0))
print("loss fell", losses[-1] < losses[0])
print("versions", torch.__version__.split("+")[0], torchvision.__version__.split("+")[0], openbayestool.__version__)
torch.save(model.state_dict(), "model.pt")
"""

KERAS_JOB = """\
import os
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np, tensorflow as tf, keras, openbayestool
keras.utils.set_random_seed(0)
x = np.random.rand(128, 4).astype("float32")
y = x.sum(axis=1, keepdims=True)
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
history = model.fit(x, y, epochs=5, batch_size=32, verbose=0)
print("gpus", len(tf.config.list_physical_devices("GPU")))
print("loss fell", history.history["loss"][-1] < history.history["loss"][0])
print("versions", tf.__version__, keras.__version__.split(".")[0], openbayestool.__version__)
model.save("model.keras")
"""


def _run(service: GearService, tmp_path: Path, image: str, job: str, command: str):  # type: ignore[no-untyped-def]
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text(job)
    lines: list[str] = []
    record = service.run(
        build_spec(gear="frameworks", image=image, compute_type="cpu", code=code, command=command),
        on_line=lines.append,
    )
    assert record.state is ExecutionState.SUCCEEDED, lines
    return record, lines


def test_pytorch_image_trains_a_small_cnn_on_the_cpu(
    service: GearService, pytorch_image: str, tmp_path: Path
) -> None:
    # `python train.py` (the HyperAI way) and an absolute /usr/bin/python3 both see torch
    record, lines = _run(
        service,
        tmp_path,
        "pytorch-2.6-2204",
        TORCH_JOB,
        "python train.py && /usr/bin/python3 -c 'import torch, openbayestool; print(\"system python ok\")'",
    )
    assert record.image == pytorch_image == PYTORCH_IMAGE
    assert "cuda available: False" in lines  # this machine has no GPU; the same image uses one if given
    assert "conv grad (4, 1, 3, 3) True" in lines
    assert "loss fell True" in lines
    assert "versions 2.14.1 0.29.1 0.3.2" in lines
    assert "system python ok" in lines
    assert (service.workdir(record) / "model.pt").stat().st_size > 0


def test_tensorflow_image_fits_a_small_keras_model_on_the_cpu(
    service: GearService, tensorflow_image: str, tmp_path: Path
) -> None:
    record, lines = _run(service, tmp_path, "tensorflow-2.15-2204", KERAS_JOB, "python3 train.py")
    assert record.image == tensorflow_image == TENSORFLOW_IMAGE
    assert "gpus 0" in lines
    assert "loss fell True" in lines
    assert "versions 2.21.0 3 0.3.2" in lines
    assert (service.workdir(record) / "model.keras").stat().st_size > 0
