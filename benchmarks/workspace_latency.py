"""Workspace latencies: start to JupyterLab answering, and shutdown to the execution closed.

Baseline, measured in the same run and interleaved: a raw ``docker run`` of the same image running
``jupyter lab`` with a token, polled the same way until ``/api/status`` answers, then shut down through
the API until the container exits. The workspace path adds the record, the working dir, the token file,
the image and port checks (start), and the trigger's poll, the save and the close (end).

    python benchmarks/workspace_latency.py [--rounds 3] [--poll-interval 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

IMAGE = "hyperai/jupyter:bookworm-1"


def answers(url: str, token: str) -> bool:
    request = urllib.request.Request(url + "/api/status", headers={"Authorization": f"token {token}"})
    try:
        with urllib.request.urlopen(request, timeout=2):
            return True
    except OSError:
        return False


def shutdown(url: str, token: str) -> None:
    request = urllib.request.Request(
        url + "/api/shutdown", method="POST", headers={"Authorization": f"token {token}"}
    )
    urllib.request.urlopen(request, timeout=5).close()


def raw_round(client) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    token = secrets.token_urlsafe(32)
    began = time.monotonic()
    container = client.containers.run(
        IMAGE,
        ["jupyter", "lab", "--allow-root", "--no-browser", "--ip=0.0.0.0", "--port=8888"],
        environment={"JUPYTER_TOKEN": token},
        ports={"8888/tcp": ("127.0.0.1", None)},
        detach=True,
        init=True,
    )
    try:
        container.reload()
        url = f"http://127.0.0.1:{container.attrs['NetworkSettings']['Ports']['8888/tcp'][0]['HostPort']}"
        while not answers(url, token):
            time.sleep(0.2)
        ready = time.monotonic() - began
        stop_began = time.monotonic()
        shutdown(url, token)
        container.wait()
        return ready, time.monotonic() - stop_began
    finally:
        container.remove(force=True)


def workspace_round(number: int, poll_interval: float) -> tuple[float, float]:
    from hyperai_provider.core.gears import GearService
    from hyperai_provider.core.settings import HyperAISettings
    from hyperai_provider.core.workspace import WorkspaceEnd, WorkspaceOptions, workspace_path
    from hyperai_provider.models.spec import ExecutionSpec
    from hyperai_provider.triggers.workspace import WorkspaceTrigger

    root = Path(tempfile.mkdtemp(prefix="hyperai-bench-ws-"))
    workspaces = GearService(HyperAISettings(storage_root=root)).workspaces
    options = WorkspaceOptions(idle_timeout=None)
    began = time.monotonic()
    spec = ExecutionSpec(gear=f"bench-ws-{number}", image="jupyter", mode="workspace")  # type: ignore[arg-type]
    workspace = workspaces.start(workspaces.plan(spec, options), options, on_line=lambda _: None)
    ready = time.monotonic() - began
    os.environ["HYPERAI_STORAGE_ROOT"] = str(root)  # the trigger resolves its settings like a task
    trigger = WorkspaceTrigger(workspace.record.id, poll_interval=poll_interval)

    async def wait_for_end() -> dict:  # type: ignore[type-arg]
        async for event in trigger.run():
            return event.payload  # type: ignore[no-any-return]
        raise RuntimeError("no event")

    stop_began = time.monotonic()
    upstream = workspaces.upstream(workspace.record)
    assert upstream is not None
    shutdown(upstream[0] + workspace_path(workspace.record).rstrip("/"), workspace.token)
    payload = asyncio.run(wait_for_end())
    workspaces.finish(
        workspace.record.id, WorkspaceEnd(payload["state"], payload["reason"], payload["exit_code"])
    )
    return ready, time.monotonic() - stop_began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--poll-interval", type=float, default=5.0)
    args = parser.parse_args()
    import docker

    client = docker.from_env(version="auto")
    raw: list[tuple[float, float]] = []
    ours: list[tuple[float, float]] = []
    for number in range(args.rounds):
        raw.append(raw_round(client))
        ours.append(workspace_round(number, args.poll_interval))
    for label, index in (("start -> JupyterLab answers", 0), ("shutdown -> closed", 1)):
        base = statistics.median(r[index] for r in raw)
        mine = statistics.median(r[index] for r in ours)
        print(f"{label:<28} raw docker {base:6.2f} s   workspace {mine:6.2f} s   ratio {mine / base:5.2f}x")
    print(f"(median of {args.rounds} interleaved rounds; trigger poll interval {args.poll_interval:g} s)")


if __name__ == "__main__":
    main()
