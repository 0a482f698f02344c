"""Working directories: their layers, merged view, completion marker, mounts and materialised views.

One owner for one rule: :meth:`Workdirs.seal` writes an execution's completion marker and
:meth:`Workdirs.require_saved` is the one check that a working directory may be used (continued, bound,
promoted, published, downloaded).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Literal

from hyperai_provider.core import layers
from hyperai_provider.core.backend import Backend
from hyperai_provider.core.container import MountSpec
from hyperai_provider.core.layers import MergedView
from hyperai_provider.core.storage import Usage, atomic_write_json, resolve_inside, tree_usage
from hyperai_provider.exceptions import ConfigurationError, ConflictError
from hyperai_provider.models import ExecutionRecord

log = logging.getLogger(__name__)

Purpose = Literal["continue", "bind", "code", "publish", "download"]
_PURPOSES: dict[str, tuple[str, str]] = {
    "continue": ("continued", "Wait for it to end (or stop it), then continue from it."),
    "bind": ("bound as an input", "Bind it once it has ended (in a DAG, make this task downstream of it)."),
    "code": ("used as code", "Take code only from a closed execution (close the workspace first)."),
    "publish": ("published as a dataset version", "Create the dataset version once it has ended."),
    "download": ("downloaded", "Download it once it has ended."),
}
VIEWS_DIR = "views"
"""Per-execution folder of materialised merged views (code from a continued working dir, sub-path inputs)."""
PROBE_TTL_SECONDS = 24 * 3600


class Workdirs:
    """Working directories under one storage root."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.storage = backend.storage

    def own(self, record: ExecutionRecord) -> Path:
        """Host path of the execution's own layer (its whole working directory unless continued)."""
        return self.storage.layer_dir(record.gear, record.number)

    def layers(self, record: ExecutionRecord) -> list[Path]:
        """The layers that make up an execution's working directory, top (its own) first."""
        return layers.workdir_layers(self.storage, record)

    def view(self, record: ExecutionRecord) -> MergedView:
        """An execution's full working directory (deletions included), readable without a container."""
        return MergedView(self.layers(record))

    # -- the completion marker ----------------------------------------------------------------------------

    def is_saved(self, record: ExecutionRecord) -> bool:
        return self.storage.is_saved(record.gear, record.number)

    def require_saved(self, record: ExecutionRecord, purpose: Purpose) -> None:
        """The one check that a working directory is final: its execution closed and its marker written."""
        what, hint = _PURPOSES[purpose]
        if not record.closed:
            raise ConflictError(
                f"Execution {record.id} is still {record.state.value}; only a closed execution's working "
                f"directory can be {what}.",
                hint,
            )
        if not self.is_saved(record):
            raise ConflictError(
                f"Execution {record.id} ended without its working directory being saved, so it cannot be {what}.",
                "Use another execution of the gear.",
            )

    def seal(self, record: ExecutionRecord) -> Usage:
        """Account the execution's own layer and write its completion marker (last, atomically)."""
        usage = tree_usage(self.own(record))
        atomic_write_json(
            self.storage.saved_marker(record.gear, record.number),
            {"execution": record.id, "bytes": usage.bytes, "files": usage.files},
        )
        return usage

    def saved_usage(self, record: ExecutionRecord) -> Usage | None:
        try:
            marker = json.loads(self.storage.saved_marker(record.gear, record.number).read_text())
            return Usage(bytes=int(marker["bytes"]), files=int(marker["files"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    # -- sharing without copying ----------------------------------------------------------------------------

    def link(self, record: ExecutionRecord, destination: Path) -> Usage:
        """Materialise a closed execution's full working directory at ``destination`` with hard links."""
        chain = self.layers(record)
        if len(chain) == 1:
            return self.storage.hardlink_tree(chain[0], destination, self.saved_usage(record))
        return MergedView(chain).link_into(destination)

    def views_dir(self, record: ExecutionRecord) -> Path:
        return self.storage.execution_dir(record.gear, record.number) / VIEWS_DIR

    def view_path(self, owner: ExecutionRecord, name: str, sub_path: str = "") -> Path:
        """Where :meth:`materialize` puts view ``name`` for ``owner`` (known before it exists)."""
        base = self.views_dir(owner) / name
        return base / sub_path.strip("/") if sub_path.strip("/") else base

    def materialize(self, source: ExecutionRecord, owner: ExecutionRecord, name: str) -> Path:
        """Hard-link ``source``'s merged view into ``owner``'s views folder; removed when ``owner`` closes."""
        destination = self.views_dir(owner) / name
        if not destination.exists():
            self.view(source).link_into(destination)
        return destination

    def discard_views(self, record: ExecutionRecord) -> None:
        self.storage.remove_tree(self.views_dir(record))

    def check_sub_path(self, record: ExecutionRecord, sub_path: str, what: str) -> Path | None:
        """Check that ``sub_path`` is a folder inside ``record``'s working directory. Returns the host path
        when the working directory is one layer, None when it must be materialised (merged view)."""
        chain = self.layers(record)
        if len(chain) == 1:
            return resolve_inside(chain[0], sub_path, what)
        relative = sub_path.strip("/")
        if relative:
            entry = self.view(record).lookup(relative)
            if entry is None or entry.kind != "dir":
                raise ConfigurationError(
                    f"The {what} {sub_path!r} is not a folder of {record.id}'s working directory.",
                    "Check the path (symlinks are not followed).",
                )
        return None

    def mount(self, record: ExecutionRecord, target: str, for_execution: ExecutionRecord) -> MountSpec:
        """A read-only mount of a closed execution's full working directory at ``target`` in
        ``for_execution``'s container: a bind of its layer, or for a continued one a read-only overlay
        volume of its chain (labelled with ``for_execution`` and removed when it closes)."""
        chain = self.layers(record)
        if len(chain) == 1:
            return MountSpec(str(chain[0]), target, read_only=True)
        name = f"{for_execution.container_name}-{target.strip('/').replace('/', '-')}"
        self.backend.runner.create_volume(name, layers.overlay_options(chain), self.backend.labels(for_execution))
        return MountSpec(name, target, read_only=True, kind="volume")

    def dependents(self, record: ExecutionRecord) -> list[ExecutionRecord]:
        """Executions standing on ``record``'s layers: never delete its working directory while any exist."""
        return layers.dependents(self.backend.store, self.storage, record)

    # -- overlays ----------------------------------------------------------------------------------------

    def overlay_available(self, image: str) -> bool:
        """Whether continuations mount an overlay (else they copy): the overlay setting, and in 'auto' a
        probe of the engine (a success is cached for a day per engine and storage root)."""
        mode = self.backend.settings.overlay
        if mode not in ("auto", "on", "off"):
            raise ConfigurationError(f"overlay={mode!r} is not a mode.", "Set HYPERAI_OVERLAY to 'auto', 'on' or 'off'.")
        if mode != "auto":
            return mode == "on"
        reason = self._probe(image)
        if reason is not None:
            log.warning("Overlays are unavailable on this engine (%s); continuations will copy", reason)
        return reason is None

    def _probe(self, image: str) -> str | None:
        runner, storage = self.backend.runner, self.storage
        cache = storage.tmp / "overlay-probe.json"
        key = f"{runner.where} {storage.root}"
        try:
            cached = json.loads(cache.read_text())
            if cached.get("key") == key and time.time() - float(cached.get("at", 0)) < PROBE_TTL_SECONDS:
                return None
        except (OSError, ValueError):
            pass
        probe = storage.temporary_dir("overlay-probe-")
        for name in ("lower", "upper", "work"):
            (probe / name).mkdir()
        (probe / "lower" / "probe").write_text("lower\n")
        volume = f"hyperai-overlay-probe-{time.monotonic_ns()}"
        reason: str | None = None
        try:
            runner.create_volume(
                volume, layers.overlay_options([probe / "lower"], probe / "upper", probe / "work"), {}
            )
            ran = runner.run_probe(
                image,
                ["/bin/sh", "-c", "cat /probe/probe > /probe/written"],
                [MountSpec(volume, "/probe", kind="volume")],
            )
            if not ran or not (probe / "upper" / "written").is_file() or (probe / "lower" / "written").exists():
                reason = "writes did not land in the upper layer"
        except Exception as error:  # any failure means "no overlays here", never a failed execution
            reason = str(getattr(error, "headline", None) or error)
        finally:
            runner.remove_volume(volume)
            layers.remove_work_dir(probe / "work")
            storage.remove_tree(probe)
        if reason is None:
            atomic_write_json(cache, {"key": key, "at": time.time()})
        return reason
