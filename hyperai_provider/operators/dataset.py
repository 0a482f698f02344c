"""``GearDatasetVersionOperator``: turn a working directory (or a folder) into a dataset version."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from hyperai_provider.exceptions import ConfigurationError
from hyperai_provider.models import DatasetSource, WorkdirSource
from hyperai_provider.models.sources import parse_source

if TYPE_CHECKING:
    from airflow.sdk import Context


class GearDatasetVersionOperator(BaseOperator):
    """Create a version of ``dataset`` (created on first use) from a closed execution's working
    directory (``from_execution``: an upstream Gear task's output or an execution id; shares the files,
    no copy) or from a local folder (``from_path``: copied). Returns the version as a binding value
    (``{"kind": "dataset", "name": ..., "version": n}``) for ``inputs={"input0": ...}``.
    """

    template_fields: Sequence[str] = ("dataset", "from_execution", "from_path")

    def __init__(
        self,
        *,
        dataset: str,
        from_execution: Any = None,
        from_path: str | None = None,
        description: str = "",
        hyperai_conn_id: str = "hyperai_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (from_execution is None) == (from_path is None):
            raise ConfigurationError(
                "GearDatasetVersionOperator needs exactly one of from_execution or from_path.",
                "Pass an upstream Gear task's output as from_execution, or a folder as from_path.",
            )
        self.dataset = dataset
        self.from_execution = from_execution
        self.from_path = from_path
        self.description = description
        self.hyperai_conn_id = hyperai_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from hyperai_provider.hooks.hyperai import HyperAIHook

        datasets = HyperAIHook(self.hyperai_conn_id).service.datasets
        datasets.ensure(self.dataset, self.description)
        if self.from_execution is not None:
            source = parse_source(self.from_execution)
            if not isinstance(source, WorkdirSource):
                raise ConfigurationError(f"from_execution={self.from_execution!r} is not an execution.")
            version = datasets.add_version_from_execution(self.dataset, source.execution_id)
        else:
            version = datasets.add_version_from_dir(self.dataset, Path(str(self.from_path)), self.log.info)
        self.log.info(
            "Dataset %s version %s: %s files, %s bytes (from %s)",
            version.dataset,
            version.version,
            version.files,
            version.bytes,
            version.source,
        )
        return DatasetSource(name=version.dataset, version=version.version).model_dump(mode="json")
