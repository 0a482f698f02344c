"""Visibility and ownership: the one layer every way of reaching data goes through.

Owners see everything of their gears and datasets. Others see only the closed executions of public
gears and the versions of public datasets, and nothing at all of private ones: a private gear or
dataset answers "does not exist", not "forbidden". Only owners change, run in, add to or delete.
Running into, continuing from, taking code from, binding and publishing all ask this layer, with the
caller's identity.

An adapter may add read-only :class:`ReadGrants` decided outside the core: the web UI asks Airflow's
auth manager (an Airflow admin reads every gear; a user Airflow lets see a DAG reads the executions that
DAG ran, ``record.airflow.dag_id``). Grants never allow a change, and nothing else uses them: the CLI,
the planner, datasets and deletion keep the plain owner/public rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hyperai_provider.core.store import GearStore
from hyperai_provider.exceptions import ConflictError, NotFoundError
from hyperai_provider.models import (
    Dataset,
    ExecutionRecord,
    Gear,
    NotificationSettings,
    Visibility,
    split_execution_id,
)


@dataclass(frozen=True)
class ReadGrants:
    """Read-only access beyond ownership and public gears, decided by the caller's adapter."""

    everything: bool = False
    """Read every gear and execution, running ones too (an Airflow admin)."""
    dag: Callable[[str], bool] | None = None
    """Whether the caller may read the executions this DAG id ran, running ones too."""


NO_GRANTS = ReadGrants()


class Access:
    """What ``user`` may see and change."""

    def __init__(self, store: GearStore, user: str, grants: ReadGrants = NO_GRANTS) -> None:
        self.store = store
        self.user = user
        self.grants = grants

    def owns(self, gear: Gear) -> bool:
        return gear.owner == self.user

    def _open(self, gear: Gear) -> bool:
        """Visible without looking at its executions: owned, public, or every gear granted."""
        return self.owns(gear) or gear.visibility is Visibility.PUBLIC or self.grants.everything

    def _by_dag(self, record: ExecutionRecord) -> bool:
        granted = self.grants.dag
        return granted is not None and record.airflow is not None and granted(record.airflow.dag_id)

    def _gears_by_dag(self, gear: str | None = None) -> set[str]:
        """Gears with an execution the caller may read through its DAG."""
        if self.grants.dag is None:
            return set()
        return {record.gear for record in self.store.list_executions(gear) if self._by_dag(record)}

    def reads(self, gear: Gear, record: ExecutionRecord) -> bool:
        """Whether the caller may read ``record`` of ``gear`` (owners and grants: running ones too)."""
        if self.owns(gear) or self.grants.everything or self._by_dag(record):
            return True
        return gear.visibility is Visibility.PUBLIC and record.closed

    def can_see(self, gear: Gear) -> bool:
        return self._open(gear) or gear.name in self._gears_by_dag(gear.name)

    def gears(self) -> list[Gear]:
        by_dag = self._gears_by_dag()
        return [gear for gear in self.store.list_gears() if self._open(gear) or gear.name in by_dag]

    def gear(self, name: str) -> Gear:
        gear = self.store.get_gear(name)
        if not self.can_see(gear):
            raise NotFoundError(f"Gear {name!r} does not exist.", "List gears with `hyperai gears`.")
        return gear

    def executions(self, gear: str | None = None) -> list[ExecutionRecord]:
        if gear is not None:
            self.gear(gear)
        gears = {g.name: g for g in self.store.list_gears()}
        return [
            record
            for record in self.store.list_executions(gear)
            if record.gear in gears and self.reads(gears[record.gear], record)
        ]

    def execution(self, execution_id: str) -> ExecutionRecord:
        missing = NotFoundError(
            f"Execution {execution_id!r} does not exist.", "List executions with `hyperai executions GEAR`."
        )
        try:
            gear_name, _ = split_execution_id(execution_id)
            gear = self.store.get_gear(gear_name)
            record = self.store.get_execution(execution_id)
        except (ValueError, NotFoundError):
            raise missing from None
        if not self.reads(gear, record):
            raise missing
        return record

    def owned_gear(self, name: str) -> Gear:
        """The gear, if ``user`` owns it (for changes); others are told it does not exist or is not theirs."""
        gear = self.gear(name)
        if not self.owns(gear):
            raise ConflictError(
                f"Gear {name!r} belongs to {gear.owner!r}; only its owner can change or delete it.",
                "Ask its owner.",
            )
        return gear

    def set_visibility(self, name: str, visibility: Visibility) -> Gear:
        self.owned_gear(name)
        return self.store.update_gear(name, lambda gear: gear.model_copy(update={"visibility": visibility}))

    def set_notifications(self, name: str, settings: NotificationSettings) -> Gear:
        self.owned_gear(name)
        return self.store.update_gear(name, lambda gear: gear.model_copy(update={"notifications": settings}))

    def require_runnable(self, name: str) -> None:
        """Executions run only in one's own gear (a new name becomes the caller's gear)."""
        try:
            gear = self.store.get_gear(name)  # not self.gear(): a private gear of another user counts too
        except NotFoundError:
            return  # new: it becomes the caller's gear
        if not self.owns(gear):
            whose = repr(gear.owner) if self.can_see(gear) else "another user"  # private: unnamed
            raise ConflictError(
                f"Gear {name!r} belongs to {whose}; executions run only in their owner's gear.",
                "Use a gear name of your own (gear=...).",
            )

    # -- datasets --------------------------------------------------------------------------------------

    def can_see_dataset(self, dataset: Dataset) -> bool:
        return dataset.owner == self.user or dataset.visibility is Visibility.PUBLIC

    def datasets(self) -> list[Dataset]:
        return [dataset for dataset in self.store.list_datasets() if self.can_see_dataset(dataset)]

    def dataset(self, name: str) -> Dataset:
        dataset = self.store.get_dataset(name)
        if not self.can_see_dataset(dataset):
            raise NotFoundError(f"Dataset {name!r} does not exist.", "List datasets with `hyperai datasets`.")
        return dataset

    def owned_dataset(self, name: str) -> Dataset:
        """The dataset, if ``user`` owns it (to add or delete versions, delete it, change its visibility)."""
        dataset = self.dataset(name)
        if dataset.owner != self.user:
            raise ConflictError(
                f"Dataset {name!r} belongs to {dataset.owner!r}; only its owner can change or delete it.",
                "Ask its owner, or create a dataset of your own.",
            )
        return dataset

    def set_dataset_visibility(self, name: str, visibility: Visibility) -> Dataset:
        self.owned_dataset(name)
        return self.store.update_dataset(name, lambda dataset: dataset.model_copy(update={"visibility": visibility}))
