"""No way out of the sandbox (issue 11): each escape reproduced on the real engine, and shown closed.

- Containers kept ``CAP_MKNOD``: a block-device node planted in a working directory was read by the *host*
  when the directory was promoted (``code_from``), and its bytes reached the next execution. Now the
  capability is gone, and even a node already there (planted here as root on the host, as a container
  from before the hardening could have) is never read or carried: promotion, dataset versions,
  downloads and the copy fallback skip it.
- In the copy fallback, a continuation followed a symlink its parent planted: uploaded code landed on
  the host (``code_conflict='overwrite'`` overwrote host files).
- A FIFO named ``x.ipynb`` in a promoted directory blocked planning forever.
- No pids limit: a fork bomb took the shared engine's PIDs.
- Capabilities, ``no-new-privileges`` and the pids limit are visible in ``docker inspect`` and inside.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import stat
import subprocess
import tarfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from hyperai_provider.core import safecopy
from hyperai_provider.core.container import DROPPED_CAPABILITIES, SECURITY_OPTIONS
from hyperai_provider.core.gears import GearService
from hyperai_provider.core.settings import HyperAISettings
from hyperai_provider.core.storage import StorageRoot
from hyperai_provider.exceptions import ConfigurationError, ConflictError
from hyperai_provider.models import ExecutionState
from hyperai_provider.models.spec import ExecutionSpec, build_spec
from tests.conftest import _need, wait_for_state

T = TypeVar("T")
SECRET = b"HOST-DISK-SECRET-0123456789\n"
SPECIALS = ("disk", "data/disk", "pipe", "sock")
CPU_PIDS = 1024  # the packaged 'cpu' compute type's pids limit
# Docker's default capability set (moby's oci/caps/defaults.go), by capability number.
DOCKER_DEFAULT_CAPS = {
    "CHOWN": 0,
    "DAC_OVERRIDE": 1,
    "FOWNER": 3,
    "FSETID": 4,
    "KILL": 5,
    "SETGID": 6,
    "SETUID": 7,
    "SETPCAP": 8,
    "NET_BIND_SERVICE": 10,
    "NET_RAW": 13,
    "SYS_CHROOT": 18,
    "MKNOD": 27,
    "AUDIT_WRITE": 29,
    "SETFCAP": 31,
}
PROBE = (
    "find . ! -type f ! -type d ! -type l | sed 's/^/SPECIAL /'; "
    "grep -rl HOST-DISK-SECRET . | sed 's/^/LEAKED /'; "
    "cat keep.txt"
)


def task(**fields: Any) -> ExecutionSpec:
    return build_spec(**{"gear": "esc", "image": "python", "compute_type": "cpu", **fields})


def quiet(_: str) -> None:
    pass


def within(seconds: float, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``function`` and fail the test if it has not returned after ``seconds`` (a blocked open())."""
    outcome: list[Any] = []

    def call() -> None:
        try:
            outcome.append(("ok", function(*args, **kwargs)))
        except BaseException as error:
            outcome.append(("error", error))

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(seconds)
    if not outcome:
        pytest.fail(f"{getattr(function, '__name__', function)} did not finish within {seconds:g} s (blocked)")
    kind, value = outcome[0]
    if kind == "error":
        raise value
    return value


def special_entries(root: Path) -> list[str]:
    """Every entry below ``root`` that is not a regular file, folder or symlink (never followed)."""
    found = []
    for directory, subdirs, names in os.walk(root):
        for name in [*subdirs, *names]:
            mode = os.lstat(Path(directory, name)).st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
                found.append(f"{Path(directory, name).relative_to(root)} ({safecopy.kind_of(mode)})")
    return found


def assert_clean_tree(root: Path) -> None:
    assert special_entries(root) == []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert SECRET not in path.read_bytes(), f"{path} carries the host device's bytes"


def assert_clean_run(lines: list[str]) -> None:
    assert not [line for line in lines if line.startswith(("SPECIAL", "LEAKED"))], lines
    assert "keep" in lines  # the regular files did arrive


@pytest.fixture
def host_block_device(tmp_path: Path) -> Iterator[int]:
    """A host loop device over a file of SECRET bytes: what a host disk would be. Its device number."""
    if os.geteuid() != 0 or shutil.which("losetup") is None:
        _need("planting device nodes needs root and losetup")
    backing = tmp_path / "host-disk.img"
    backing.write_bytes(SECRET * 2048)
    attached = subprocess.run(["losetup", "-f", "--show", str(backing)], capture_output=True, text=True)
    if attached.returncode != 0:
        _need(f"no loop device could be attached ({attached.stderr.strip()})")
    device = attached.stdout.strip()
    try:
        yield os.stat(device).st_rdev
    finally:
        subprocess.run(["losetup", "-d", device], capture_output=True)


def plant_specials(layer: Path, rdev: int, kinds: str) -> None:
    """What a compromised container from before the hardening could leave: device nodes of a host disk,
    or a FIFO and a socket (each of which made the old copies block or fail)."""
    (layer / "data").mkdir(exist_ok=True)
    if kinds == "devices":
        os.mknod(layer / "disk", stat.S_IFBLK | 0o644, rdev)
        os.mknod(layer / "data" / "disk", stat.S_IFBLK | 0o644, rdev)
        return
    os.mkfifo(layer / "pipe")
    os.mkfifo(layer / "data" / "pipe.ipynb")
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(layer / "sock"))


# -- capabilities, no-new-privileges, pids ----------------------------------------------------------------


@pytest.mark.docker
def test_containers_run_without_mknod_and_the_other_dropped_capabilities(docker_service: GearService) -> None:
    service = docker_service
    lines: list[str] = []
    created: list[Any] = []
    outcome: list[Any] = []
    command = (
        "grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status; "
        "echo pids.max=$(cat /sys/fs/cgroup/pids/pids.max); "
        "mknod disk b 7 0; echo mknod-block=$?; mknod zero c 1 5; echo mknod-char=$?; "
        "touch mine && chown 65534:65534 mine && chmod 600 mine && echo chown-chmod-ok; "
        "while [ ! -e release ]; do sleep 0.1; done"
    )
    thread = threading.Thread(
        target=lambda: outcome.append(
            service.run(task(command=command), on_line=lines.append, on_created=created.append)
        ),
        daemon=True,
    )
    thread.start()
    record = wait_for_state(service, "esc/1", ExecutionState.RUNNING, timeout=120)
    try:
        inspected = service.runner.inspect(record.container_name)
        assert inspected is not None
        host_config = inspected["HostConfig"]
        assert sorted(host_config["CapDrop"]) == sorted(DROPPED_CAPABILITIES)
        assert "MKNOD" in host_config["CapDrop"] and not host_config.get("CapAdd")
        assert host_config["SecurityOpt"] == list(SECURITY_OPTIONS) == ["no-new-privileges"]
        assert host_config["PidsLimit"] == CPU_PIDS
    finally:
        (service.workdir(record) / "release").touch()
        thread.join(60)
    assert outcome and outcome[0].state is ExecutionState.SUCCEEDED

    status = dict(line.split(":\t", 1) for line in lines if line.startswith(("Cap", "NoNewPrivs")))
    kept = {name: bit for name, bit in DOCKER_DEFAULT_CAPS.items() if name not in DROPPED_CAPABILITIES}
    assert int(status["CapEff"], 16) == int(status["CapBnd"], 16) == sum(1 << bit for bit in kept.values())
    for name in DROPPED_CAPABILITIES:
        assert not int(status["CapEff"], 16) & (1 << DOCKER_DEFAULT_CAPS[name]), name
    assert status["NoNewPrivs"] == "1"
    assert f"pids.max={CPU_PIDS}" in lines  # was 'max' in every container
    assert "mknod-block=1" in lines and "mknod-char=1" in lines  # EPERM
    assert any("Operation not permitted" in line for line in lines)
    assert "chown-chmod-ok" in lines  # root in the container still owns its files
    home = service.workdir(outcome[0])
    assert not (home / "disk").exists() and not (home / "zero").exists()


@pytest.mark.docker
def test_a_fork_bomb_is_bounded_by_the_pids_limit_and_the_engine_stays_usable(
    docker_service: GearService,
) -> None:
    bomb = (
        "import subprocess, time\n"
        "print('pids.max', open('/sys/fs/cgroup/pids/pids.max').read().strip(), flush=True)\n"
        "subprocess.Popen(['/bin/sh', '-c', 'b() { b | b & }; b'], stderr=subprocess.DEVNULL)\n"
        "time.sleep(6)\n"  # no fork from here on: the bomb holds every PID the container may have
        "print('pids.current', open('/sys/fs/cgroup/pids/pids.current').read().strip())\n"
        "print('pids.events', open('/sys/fs/cgroup/pids/pids.events').read().strip())\n"
    )
    lines: list[str] = []
    record = within(180, docker_service.run, task(command=["python3", "-c", bomb]), on_line=lines.append)
    assert record.state is ExecutionState.SUCCEEDED
    values = dict(line.split(" ", 1) for line in lines if line.startswith("pids."))
    assert values["pids.max"] == str(CPU_PIDS)
    assert 0 < int(values["pids.current"]) <= CPU_PIDS
    assert int(values["pids.events"].split()[-1]) > 0  # forks were refused at the limit
    assert docker_service.runner.client.ping()
    after = within(120, docker_service.run, task(command="echo still-usable"), on_line=lines.append)
    assert after.state is ExecutionState.SUCCEEDED and "still-usable" in lines


# -- device nodes, FIFOs and sockets in a closed working directory -------------------------------------------


@pytest.mark.docker
@pytest.mark.parametrize("kinds", ["devices", "fifo-and-socket"])
def test_a_device_node_in_a_closed_working_directory_is_never_read_nor_carried(
    docker_service: GearService, storage_root: Path, host_block_device: int, kinds: str
) -> None:
    service = docker_service
    parent = service.run(
        task(gear="dev", command="mkdir -p data && echo keep > keep.txt && echo d > data/d.txt"), on_line=quiet
    )
    child = service.run(task(gear="dev", continue_from=parent.id, command="echo c > child.txt"), on_line=quiet)
    assert child.lower_layers, "the child should stand on its parent's layer (overlay)"
    for record in (parent, child):
        plant_specials(service.workdir(record), host_block_device, kinds)
    if kinds == "devices":  # the defect's premise: a planted node opened by the host reads the host's device
        assert (service.workdir(parent) / "disk").read_bytes()[: len(SECRET)] == SECRET
    service.datasets.create("planted")
    copying = GearService(HyperAISettings(storage_root=storage_root, user="alice", overlay="off"))
    try:
        for source in (parent, child):  # one layer (cp --link, plain copies) and a merged view of two
            lines: list[str] = []
            promoted = within(
                120, service.run, task(gear="promo", code_from=source.id, command=PROBE), on_line=lines.append
            )
            assert_clean_run(lines)
            assert_clean_tree(service.workdir(promoted))

            version = within(60, service.datasets.add_version_from_execution, "planted", source.id)
            assert_clean_tree(service.storage.dataset_version_dir("planted", version.version))
            assert version.files >= 2

            archive = io.BytesIO()
            within(60, service.workdir_view(source).write_archive, archive)
            archive.seek(0)
            with tarfile.open(fileobj=archive, mode="r:gz") as tar:
                members = tar.getmembers()
                assert all(m.isfile() or m.isdir() or m.issym() for m in members), [
                    (m.name, m.type) for m in members
                ]
                assert "keep.txt" in {m.name for m in members}
                for member in members:
                    if member.isfile():
                        extracted = tar.extractfile(member)
                        assert extracted is not None and SECRET not in extracted.read()

            lines = []
            continued = within(
                120,
                copying.run,
                task(gear="dev", continue_from=source.id, command=PROBE),
                on_line=lines.append,
            )
            assert continued.lower_layers == [] and any("by copying" in line for line in lines)
            assert_clean_run(lines)
            assert_clean_tree(copying.workdir(continued))
    finally:
        copying.backend.close()


def test_cp_link_fast_path_never_leaves_a_special_file_in_the_destination(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        _need("planting device nodes needs root")
    source = tmp_path / "layer"
    (source / "sub").mkdir(parents=True)
    (source / "keep.txt").write_text("keep\n")
    (source / "link").symlink_to("/etc/hostname")
    os.mknod(source / "sub" / "zero", stat.S_IFCHR | 0o666, os.makedev(1, 5))  # /dev/zero: endless
    os.mkfifo(source / "pipe.ipynb")
    plain = tmp_path / "plain-cp"
    subprocess.run(["cp", "-a", "--link", "--no-target-directory", str(source), str(plain)], check=True)
    assert sorted(special_entries(plain)) == ["pipe.ipynb (FIFO)", "sub/zero (character device)"]  # the defect
    linked = tmp_path / "linked"
    usage = StorageRoot(tmp_path / "root").hardlink_tree(source, linked)
    assert special_entries(linked) == [] and usage.files == 1
    assert (linked / "link").is_symlink() and os.readlink(linked / "link") == "/etc/hostname"


# -- symlinks planted by a parent, copy fallback ------------------------------------------------------------


@pytest.mark.docker
@pytest.mark.parametrize(
    ("overlay", "conflict"),
    [
        pytest.param("off", "keep", id="copy-keep"),
        pytest.param("off", "overwrite", id="copy-overwrite"),
        pytest.param("off", "error", id="copy-error"),
        pytest.param("auto", "overwrite", id="overlay-overwrite"),
    ],
)
def test_a_planted_symlink_never_leads_uploaded_code_onto_the_host(
    storage_root: Path, docker_engine: Any, base_image: str, tmp_path: Path, overlay: str, conflict: str
) -> None:
    host = tmp_path / "host"
    host.mkdir()
    (host / "victim.py").write_text("host file\n")
    code = tmp_path / "code"
    (code / "sub").mkdir(parents=True)
    (code / "sub" / "x").write_text("uploaded x\n")
    (code / "victim.py").write_text("uploaded victim\n")
    service = GearService(HyperAISettings(storage_root=storage_root, user="alice", overlay=overlay))  # type: ignore[arg-type]
    try:
        parent = service.run(
            task(command=f"ln -s {host} sub && ln -s {host}/victim.py victim.py"), on_line=quiet
        )
        lines: list[str] = []
        spec = task(
            continue_from=parent.id, code=code, code_conflict=conflict, command="ls -la; cat sub/x; true"
        )
        if conflict == "error":
            with pytest.raises(ConflictError, match=r"sub/x \(sub is a symlink\)") as refused:
                within(120, service.run, spec, on_line=lines.append)
            assert "victim.py" in str(refused.value)
        else:
            child = within(120, service.run, spec, on_line=lines.append)
            assert child.lower_layers == ([] if overlay == "off" else [f"gears/esc/{parent.number}/home"])
            view = service.workdir_view(child)
            if conflict == "keep":
                assert {line for line in lines if "kept the continued" in line} == {
                    "[hyperai] kept the continued working directory's sub/x (code_conflict='keep')",
                    "[hyperai] kept the continued working directory's victim.py (code_conflict='keep')",
                }
                assert view.lookup("sub").kind == "symlink"  # type: ignore[union-attr]
            else:
                assert "uploaded x" in lines
                x, victim = view.lookup("sub/x"), view.lookup("victim.py")
                assert x is not None and x.kind == "file" and x.path.read_text() == "uploaded x\n"
                assert victim is not None and victim.kind == "file"
                assert victim.path.read_text() == "uploaded victim\n"
        # Nothing was written through the symlinks: the host folder is as it was.
        assert sorted(p.name for p in host.iterdir()) == ["victim.py"]
        assert (host / "victim.py").read_text() == "host file\n"
    finally:
        service.backend.close()


# -- FIFOs named like notebooks ------------------------------------------------------------------------------


@pytest.mark.docker
def test_a_fifo_named_like_a_notebook_never_blocks_planning(docker_service: GearService) -> None:
    service = docker_service
    source = service.run(
        task(
            gear="fifo",
            command="mkfifo x.ipynb .hyperaiignore && mkdir sub && mkfifo sub/y.ipynb "
            "&& echo \"print('ran')\" > job.py",
        ),
        on_line=quiet,
    )
    # No command: the one notebook is looked for; a FIFO is none, and planning says so instead of blocking.
    with pytest.raises(ConfigurationError, match="exactly one notebook"):
        within(30, service.plan, task(gear="fifo", code_from=source.id, command=None))
    # With a command: the FIFOs are skipped (logged), the rest is the code.
    lines: list[str] = []
    record = within(
        120, service.run, task(gear="fifo", code_from=source.id, command="python3 job.py"), on_line=lines.append
    )
    assert "ran" in lines
    home = service.workdir(record)
    assert (home / "job.py").is_file() and not os.path.lexists(home / "x.ipynb")
    assert special_entries(home) == []


@pytest.mark.docker
def test_a_notebook_symlinked_to_a_host_file_is_refused(docker_service: GearService, tmp_path: Path) -> None:
    host_notebook = tmp_path / "host.ipynb"
    host_notebook.write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    source = docker_service.run(task(gear="nb", command=f"ln -s {host_notebook} y.ipynb"), on_line=quiet)
    with pytest.raises(ConfigurationError, match=r"y\.ipynb.*not a regular file \(it is a symlink\)"):
        within(30, docker_service.plan, task(gear="nb", code_from=source.id, command=None))
