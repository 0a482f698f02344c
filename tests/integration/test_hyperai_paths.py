"""An execution sees its data and working directory at every path HyperAI documents, and secret
environment variables reach the container only."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from hyperai_provider.core.gears import GearService
from hyperai_provider.models.spec import ExecutionSpec

pytestmark = pytest.mark.docker

CHECK = """
set -e
for p in /hyperai/input/input0 /input0 /openbayes/input/input0; do
  test "$(cat $p/data.txt)" = "data"; if touch $p/x 2>/dev/null; then echo "$p writable"; exit 9; fi
done
echo from-home > /hyperai/home/a.txt
test "$(cat /output/a.txt)" = from-home && test "$(cat /openbayes/home/a.txt)" = from-home
echo "secret digest $(printf %s "$SECRET_TOKEN" | sha256sum | cut -c1-16)"
"""


def test_bindings_and_the_working_directory_are_at_hyperai_and_openbayes_paths(
    docker_service: GearService, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "data.txt").write_text("data")
    docker_service.datasets.create("paths")
    docker_service.datasets.add_version_from_dir("paths", data)
    seen: list[str] = []
    spec = ExecutionSpec(
        gear="paths",
        image="python",
        command=CHECK,
        inputs=docker_service.bindings_from({"input0": "dataset:paths@1"}),
        secret_environment={"SECRET_TOKEN": "s3cret-value"},
    )
    record = docker_service.run(spec, on_line=seen.append)
    digest = hashlib.sha256(b"s3cret-value").hexdigest()[:16]
    assert record.state.value == "succeeded" and f"secret digest {digest}" in seen
    assert record.secret_names == ["SECRET_TOKEN"]
    stored = json.dumps(docker_service.get(record.id).model_dump(mode="json"))
    log = docker_service.storage.log_path(record.gear, record.number).read_text()
    assert "s3cret-value" not in stored + log + repr(spec)
