"""Pydantic v2 models: frozen, strict about unknown fields, versioned when persisted."""

from hyperai_provider.models.base import SCHEMA_VERSION, FrozenModel, SafeName, Visibility, check_name, utcnow
from hyperai_provider.models.binding import (
    HOME,
    HOME_ALIASES,
    INPUT_ROOT,
    INPUT_SLOTS,
    OUTPUT,
    DatasetSource,
    InputBinding,
    WorkdirSource,
)
from hyperai_provider.models.compute import ComputeType
from hyperai_provider.models.dataset import Dataset, DatasetVersion
from hyperai_provider.models.execution import (
    ALLOWED_TRANSITIONS,
    CLOSED_STATES,
    OPEN_STATES,
    AirflowContext,
    ExecutionMode,
    ExecutionRecord,
    ExecutionState,
    RunnerIdentity,
    StateChange,
    WorkspaceInfo,
    execution_id,
    split_execution_id,
)
from hyperai_provider.models.gear import Gear, NotificationSettings, NotifyEvent
from hyperai_provider.models.image import RuntimeImage

__all__ = [
    "ALLOWED_TRANSITIONS",
    "CLOSED_STATES",
    "HOME",
    "HOME_ALIASES",
    "INPUT_ROOT",
    "INPUT_SLOTS",
    "OPEN_STATES",
    "OUTPUT",
    "SCHEMA_VERSION",
    "AirflowContext",
    "ComputeType",
    "Dataset",
    "DatasetSource",
    "DatasetVersion",
    "ExecutionMode",
    "ExecutionRecord",
    "ExecutionState",
    "FrozenModel",
    "Gear",
    "InputBinding",
    "NotificationSettings",
    "NotifyEvent",
    "RunnerIdentity",
    "RuntimeImage",
    "SafeName",
    "StateChange",
    "Visibility",
    "WorkdirSource",
    "WorkspaceInfo",
    "check_name",
    "execution_id",
    "split_execution_id",
    "utcnow",
]
