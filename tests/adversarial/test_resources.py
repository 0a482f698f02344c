"""Resource abuse: memory and disk stay bounded whatever a program prints or a user views (issue 11).

Each used to be unbounded: output without newlines was quadratic (`pending += chunk`: 40 MB took 49 s
and 157 MiB here, 53 s and 433 MB in the report), output.log grew without limit, the container's own
root filesystem (/tmp, pip installs) was outside the disk quota, viewing a 1.5 GB file in the web UI read
it whole (1.4 GiB in the api-server), and a README of many '[' rendered in quadratic time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest.mock import create_autospec

import pytest

from hyperai_provider.core.container import TAIL_LINE_CHARS
from hyperai_provider.core.gears import GearService
from hyperai_provider.core.output import (
    CONTINUED,
    LINE_LIMIT,
    MAX_LINE_BYTES,
    TRUNCATED_PREFIX,
    LineSplitter,
    OutputLog,
    read_from,
    tail,
)
from hyperai_provider.core.runner import DockerRunner
from hyperai_provider.exceptions import ExecutionFailedError
from hyperai_provider.models import ExecutionState
from hyperai_provider.models.spec import build_spec
from tests.conftest import ROOT, managed_names

MiB = 1024 * 1024
FORTY_MB = 40_000_000


def request(**fields: object):  # type: ignore[no-untyped-def]
    return build_spec(**{"gear": "res", "image": "hyperai/base:bookworm-1", "compute_type": "cpu", **fields})


def small_disk(service: GearService, quota: str) -> None:
    (service.settings.storage_root / "compute_types.yaml").write_text(
        f"small-disk:\n  cpus: 1\n  memory: 256MiB\n  disk_quota: {quota}\n"
    )


def whole(pieces: list[str]) -> str:
    """A long line put back together from its pieces."""
    return "".join(piece.removesuffix(CONTINUED) for piece in pieces)


# -- splitting bytes into lines (pure logic) -------------------------------------------------------------------


def split(chunks: list[bytes], limit: int = LINE_LIMIT) -> list[str]:
    splitter = LineSplitter(limit)
    lines = [line for chunk in chunks for line in splitter.feed(chunk)]
    return lines + splitter.finish()


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        pytest.param([b"a\nb\n"], ["a", "b"], id="whole-lines"),
        pytest.param([b"a", b"b\nc", b"\n"], ["ab", "c"], id="line-across-chunks"),
        pytest.param([b"a\r\n\r\nb"], ["a", "", "b"], id="crlf-and-empty-line"),
        pytest.param([b"no newline"], ["no newline"], id="last-line-unterminated"),
        pytest.param([b"\xff\xfeok\n"], ["\ufffd\ufffdok"], id="not-utf8"),
        pytest.param([b"caf\xc3", b"\xa9\n"], ["café"], id="utf8-across-chunks"),
        pytest.param([], [], id="nothing"),
    ],
)
def test_splitter_lines(chunks: list[bytes], expected: list[str]) -> None:
    assert split(chunks) == expected


@pytest.mark.parametrize("chunk_size", [1, 7, 16, 1000], ids=lambda n: f"chunks-of-{n}")
def test_a_long_line_comes_in_marked_pieces_that_rebuild_it(chunk_size: int) -> None:
    text = ("é" * 50 + "x" * 13 + "\n" + "short\n" + "€" * 40).encode()
    chunks = [text[i : i + chunk_size] for i in range(0, len(text), chunk_size)]
    lines = split(chunks, limit=16)
    long_one = lines[: lines.index("short")]
    assert all(piece.endswith(CONTINUED) for piece in long_one[:-1]) and not long_one[-1].endswith(CONTINUED)
    assert all(len(piece.removesuffix(CONTINUED).encode()) <= 16 for piece in lines)
    assert "\ufffd" not in "".join(lines)  # no character is split at a cut
    assert whole(long_one) == "é" * 50 + "x" * 13
    assert whole(lines[lines.index("short") + 1 :]) == "€" * 40


def test_forty_megabytes_without_a_newline_split_in_linear_time_and_bounded_memory() -> None:
    chunk = b"x" * 16384
    splitter = LineSplitter()
    pieces = 0
    tracemalloc.start()
    started = time.perf_counter()
    for _ in range(FORTY_MB // len(chunk)):
        for piece in splitter.feed(chunk):
            pieces += 1
            assert len(piece) == LINE_LIMIT + len(CONTINUED)
        assert splitter.pending_bytes <= LINE_LIMIT
    pieces += len(splitter.finish())
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert pieces == -(-(FORTY_MB // len(chunk) * len(chunk)) // LINE_LIMIT)
    assert elapsed < 5, f"{elapsed:.1f} s"
    assert peak < 1 * MiB, f"peak {peak:,} bytes"


def test_stream_and_wait_forwards_pieces_and_keeps_short_last_lines() -> None:
    """The runner's loop on a spec'd fake container (the engine's side is the real-engine tests below)."""
    from docker.models.containers import Container

    def output() -> Iterator[bytes]:
        yield b"first\n"
        chunk = b"y" * 16384
        for _ in range(FORTY_MB // len(chunk)):
            yield chunk
        yield b"\nlast"

    container = create_autospec(Container, instance=True)
    container.logs.return_value = output()
    container.wait.return_value = {"StatusCode": 3}
    container.attrs = {"State": {"ExitCode": 3, "OOMKilled": False}}
    seen = {"lines": 0, "longest": 0, "first": "", "last": ""}

    def on_line(line: str) -> None:
        seen["lines"] += 1
        seen["longest"] = max(seen["longest"], len(line))
        seen["first"] = seen["first"] or line
        seen["last"] = line

    tracemalloc.start()
    started = time.perf_counter()
    result = DockerRunner().stream_and_wait(container, on_line)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert result.exit_code == 3 and result.last_lines[-1] == "last"
    assert (seen["first"], seen["last"]) == ("first", "last")
    assert seen["longest"] == LINE_LIMIT + len(CONTINUED)
    assert all(len(line) <= TAIL_LINE_CHARS + len(" [...]") for line in result.last_lines)
    assert elapsed < 5 and peak < 2 * MiB, (elapsed, peak)


# -- the output log ------------------------------------------------------------------------------------------


def test_output_log_stops_at_its_limit_and_says_where(tmp_path: Path) -> None:
    path = tmp_path / "output.log"
    with OutputLog(path, 10_000) as log:
        for n in range(2000):
            log.write_line(f"line {n}")
        assert log.truncated and log.size == path.stat().st_size <= 10_000
    text = path.read_text()
    assert path.stat().st_size <= 10_000
    kept = [line for line in text.splitlines() if not line.startswith(TRUNCATED_PREFIX)]
    assert kept == [f"line {n}" for n in range(len(kept))] and len(kept) == log.lines_written
    notes = [line for line in text.splitlines() if line.startswith(TRUNCATED_PREFIX)]
    assert len(notes) == 2 and notes == text.splitlines()[-2:]
    assert f"at byte {sum(len(f'line {n}') + 1 for n in range(len(kept))):,}" in notes[0]
    assert "limit of 10,000 bytes" in notes[0]
    assert f"{2000 - len(kept):,} later line(s)" in notes[1] and log.lines_dropped == 2000 - len(kept)


def test_output_log_counts_what_the_file_already_holds(tmp_path: Path) -> None:
    path = tmp_path / "output.log"
    path.write_text("x" * 9000 + "\n")
    with OutputLog(path, 10_000) as log:
        log.write_line("y" * 600)  # 9001 + 601 > 10,000 - reserve
        log.write_line("z")
    assert log.truncated and log.bytes_written == path.stat().st_size - 9001
    assert path.read_text().startswith("x" * 9000 + "\n" + TRUNCATED_PREFIX)


def test_output_log_writes_a_long_line_from_anywhere_in_pieces(tmp_path: Path) -> None:
    """Lines that did not come through a splitter (the provider's own, a workspace's kept output) too:
    no line in the file is longer than MAX_LINE_BYTES, which is what tail() relies on."""
    path = tmp_path / "output.log"
    with OutputLog(path, 10 * MiB) as log:
        log.write_line("é" * 100_000)
    lines = path.read_bytes().split(b"\n")[:-1]
    assert len(lines) == 4 and max(len(line) + 1 for line in lines) <= MAX_LINE_BYTES
    assert whole([line.decode() for line in lines]) == "é" * 100_000


def test_a_follower_reads_the_tail_then_only_complete_new_lines(tmp_path: Path) -> None:
    path = tmp_path / "output.log"
    with OutputLog(path, 10 * MiB) as log:
        for n in range(10_000):
            log.write_line(f"step {n}")
        lines, offset = tail(path, 3)
        assert lines == ["step 9997", "step 9998", "step 9999"] and offset == path.stat().st_size
        assert read_from(path, offset) == ([], offset)
        log.write_line("next")
        with path.open("ab") as raw:
            raw.write(b"half a li")  # a line being written: not shown until its newline
        new, offset = read_from(path, offset)
        assert new == ["next"]
        with path.open("ab") as raw:
            raw.write(b"ne\n")
        assert read_from(path, offset)[0] == ["half a line"]
    assert tail(tmp_path / "missing.log") == ([], 0)


def test_tail_of_a_large_log_reads_only_its_end(tmp_path: Path) -> None:
    path = tmp_path / "output.log"
    with path.open("wb") as raw:
        raw.truncate(1024**3)  # 1 GiB (sparse), then lines
        raw.seek(0, os.SEEK_END)
        raw.write(b"".join(f"line {n}\n".encode() for n in range(100)))
    started = time.perf_counter()
    lines, offset = tail(path, 40)
    elapsed = time.perf_counter() - started
    assert lines == [f"line {n}" for n in range(60, 100)] and offset == path.stat().st_size
    assert elapsed < 0.1, f"{elapsed * 1000:.0f} ms"


# -- on the real engine ---------------------------------------------------------------------------------------

_PROBE = """
import json, resource, sys, time
from pathlib import Path
from hyperai_provider.core.gears import GearService
from hyperai_provider.core.settings import HyperAISettings
from hyperai_provider.models.spec import build_spec

service = GearService(HyperAISettings(storage_root=Path(sys.argv[1]), user="alice"))
service.runner.client.ping()
spec = build_spec(gear="res", image="hyperai/base:bookworm-1", compute_type="cpu", command=sys.argv[2])
seen = {"lines": 0, "longest": 0, "chars": 0}
def on_line(line):
    seen["lines"] += 1
    seen["chars"] += len(line)
    seen["longest"] = max(seen["longest"], len(line))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
started = time.perf_counter()
record = service.run(spec, on_line=on_line)
elapsed = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
log = service.storage.log_path(record.gear, record.number)
print(json.dumps({**seen, "state": record.state.value, "seconds": elapsed, "rss_growth": peak - before,
                  "log_bytes": log.stat().st_size, "container": record.container_name}))
service.store.dispose()
"""


@pytest.mark.docker
def test_forty_megabytes_without_a_newline_run_in_seconds_in_bounded_memory(
    storage_root: Path, docker_engine: Any, base_image: str
) -> None:
    """Through the facade in a fresh process, so that its peak RSS is this run's alone."""
    probe = subprocess.run(
        [sys.executable, "-c", _PROBE, str(storage_root), f"head -c {FORTY_MB} /dev/zero | tr '\\0' x"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    result = json.loads(probe.stdout.strip().splitlines()[-1])
    assert result["state"] == ExecutionState.SUCCEEDED.value
    assert result["seconds"] < 15, result
    assert result["rss_growth"] < 64 * MiB, result  # was 157 MiB (433 MB under Airflow)
    assert result["longest"] == LINE_LIMIT + len(CONTINUED)
    pieces = -(-FORTY_MB // LINE_LIMIT)
    assert result["chars"] - (pieces - 1) * len(CONTINUED) >= FORTY_MB, result  # every byte forwarded
    assert FORTY_MB < result["log_bytes"] < FORTY_MB + pieces * (len(CONTINUED) + 1) + 4096
    assert result["container"] not in managed_names(storage_root)


@pytest.mark.docker
def test_output_beyond_the_log_limit_is_cut_and_the_execution_closes_normally(
    docker_service: GearService,
) -> None:
    """The log keeps at most a quarter of the compute type's disk quota (2 MiB here); the task log still gets
    every line."""
    small_disk(docker_service, "2MiB")
    lines: list[str] = []
    record = docker_service.run(
        request(compute_type="small-disk", command="seq 1 400000"), on_line=lines.append
    )
    assert record.state is ExecutionState.SUCCEEDED and record.exit_code == 0
    assert [line for line in lines if not line.startswith("[hyperai]")] == [str(n) for n in range(1, 400001)]
    log = docker_service.storage.log_path(record.gear, record.number)
    assert log.stat().st_size <= 2 * MiB // 4
    text = log.read_text().splitlines()
    assert text[-2].startswith(f"{TRUNCATED_PREFIX} at byte ") and "limit of 524,288 bytes" in text[-2]
    assert text[-1].startswith(TRUNCATED_PREFIX) and "later line(s)" in text[-1]
    numbers = [line for line in text if line.isdigit()]
    assert numbers == [str(n) for n in range(1, len(numbers) + 1)] and len(numbers) > 80_000


@pytest.mark.docker
def test_files_written_outside_the_working_directory_count_towards_the_disk_quota(
    docker_service: GearService,
) -> None:
    """/tmp is in the container's writable layer: it used to escape the quota entirely."""
    small_disk(docker_service, "2MiB")
    started = time.perf_counter()
    with pytest.raises(ExecutionFailedError) as raised:
        docker_service.run(
            request(compute_type="small-disk", command="head -c 5000000 /dev/zero > /tmp/fill && sleep 60"),
            on_line=lambda _: None,
        )
    record = docker_service.executions()[0]
    assert time.perf_counter() - started < 30
    assert record.state is ExecutionState.FAILED, record
    assert "disk quota exceeded" in (record.failure_reason or "") and "disk quota exceeded" in str(
        raised.value
    )


@pytest.mark.docker
def test_writable_layer_bytes_measures_what_a_container_wrote_and_paces_itself(
    docker_engine: Any, base_image: str
) -> None:
    runner = DockerRunner()
    name = f"hyperai-test-writable-{os.getpid()}"
    runner.remove(name)
    container = runner.client.containers.run(
        base_image,
        ["sh", "-c", "head -c 3000000 /dev/zero > /tmp/a && touch /tmp/written && sleep 60"],
        name=name,
        detach=True,
        network_mode="none",
    )
    try:
        deadline = time.monotonic() + 30
        while container.exec_run(["test", "-e", "/tmp/written"]).exit_code != 0:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert (runner.writable_layer_bytes(name) or 0) >= 3_000_000
        container.exec_run(["sh", "-c", "head -c 2000000 /dev/zero > /tmp/b"])
        # a tiny budget: the last measurement is reused (measuring again would cost too much)
        assert (runner.writable_layer_bytes(name, budget=1e-9) or 0) < 5_000_000
        runner.__dict__["_writable_layer_sizes"].clear()
        assert (runner.writable_layer_bytes(name) or 0) >= 5_000_000
    finally:
        runner.remove(name)
    assert runner.writable_layer_bytes(name) is None


@pytest.mark.docker
def test_a_stopped_containers_output_is_read_back_in_pieces(docker_engine: Any, base_image: str) -> None:
    """``output_lines`` (for keeping a workspace's output) streams like ``stream_and_wait`` does."""
    runner = DockerRunner()
    name = f"hyperai-test-output-{os.getpid()}"
    runner.remove(name)
    container = runner.client.containers.run(
        base_image,
        ["sh", "-c", "echo first; head -c 3000000 /dev/zero | tr '\\0' z; echo; echo last"],
        name=name,
        detach=True,
        network_mode="none",
    )
    try:
        container.wait(timeout=60)
        lines: list[str] = []
        tracemalloc.start()
        count = runner.output_lines(name, lines.append)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    finally:
        runner.remove(name)
    assert count == len(lines) and (lines[0], lines[-1]) == ("first", "last")
    assert whole(lines[1:-1]) == "z" * 3_000_000 and max(map(len, lines)) == LINE_LIMIT + len(CONTINUED)
    assert peak < 3_000_000 + 2 * MiB  # the pieces kept by this test, and little more
    assert runner.output_lines(name, lines.append) == 0


# -- the web UI's file view ---------------------------------------------------------------------------------


@pytest.fixture
def web_client(docker_service: GearService) -> Iterator[tuple[Any, GearService, str]]:
    """The HyperAI app in-process as alice (auth and service dependencies overridden), with one closed
    execution."""
    from fastapi.testclient import TestClient

    from hyperai_provider.plugins import deps
    from hyperai_provider.plugins.app import create_app

    record = docker_service.run(request(command="echo small > small.txt"), on_line=lambda _: None)
    app = create_app()
    app.dependency_overrides[deps.airflow_user_name] = lambda: "alice"
    app.dependency_overrides[deps.gear_service] = lambda: docker_service
    with TestClient(app) as client:
        yield client, docker_service, record.id


def sparse_text_file(path: Path, size: int) -> None:
    """2 MiB of text lines, then zeros to ``size`` (sparse: no disk used)."""
    with path.open("wb") as raw:
        raw.write(b"".join(f"row {n:07d}\n".encode() for n in range(2 * MiB // 12)))
        raw.truncate(size)


@pytest.mark.docker
def test_viewing_a_huge_file_shows_a_bounded_preview_in_bounded_memory(
    web_client: tuple[Any, GearService, str],
) -> None:
    client, service, execution = web_client
    record = service.get(execution)
    sparse_text_file(service.workdir(record) / "big.txt", 1_500_000_000)
    tracemalloc.start()
    started = time.perf_counter()
    page = client.get(f"/executions/{execution}/files/big.txt")
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert page.status_code == 200, page.text[:500]
    assert peak < 32 * MiB, f"peak {peak:,} bytes"  # was the whole file: 1.4 GiB
    assert elapsed < 5
    assert 'id="preview-note"' in page.text and "Showing the first 1.0 MB of 1.5 GB" in page.text
    assert f"/executions/{execution}/files/big.txt?download=1" in page.text
    assert "row 0000000" in page.text and "row 0100000" not in page.text  # ~1 MiB of 2 MiB of rows
    assert len(page.content) < 2 * MiB


@pytest.mark.docker
def test_downloading_a_huge_file_streams_it_in_chunks(web_client: tuple[Any, GearService, str]) -> None:
    client, service, execution = web_client
    record = service.get(execution)
    sparse_text_file(service.workdir(record) / "big.bin", 1_500_000_000)
    tracemalloc.start()
    received = 0
    with client.stream("GET", f"/executions/{execution}/files/big.bin?download=1") as response:
        assert response.status_code == 200
        assert response.headers["content-length"] == "1500000000"
        assert response.headers["content-type"] == "application/octet-stream"
        assert response.headers["content-disposition"] == 'attachment; filename="big.bin"'
        for chunk in response.iter_raw():
            assert len(chunk) <= 64 * 1024
            received += len(chunk)
            if received >= 16 * MiB:
                break
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert received >= 16 * MiB and peak < 16 * MiB, f"peak {peak:,} bytes"


def test_hostile_markdown_renders_in_linear_time() -> None:
    from hyperai_provider.plugins.render import markdown
    from hyperai_provider.plugins.routes.files import MARKDOWN_LIMIT

    for source in ("[" * MARKDOWN_LIMIT, "[a](" * (MARKDOWN_LIMIT // 4), "](" * (MARKDOWN_LIMIT // 2)):
        started = time.perf_counter()
        markdown(source)
        assert time.perf_counter() - started < 2, source[:8]  # was 5 s for 40 KB of '[' (quadratic)
