"""Airflow operators for Gear executions."""

from hyperai_provider.operators.dataset import GearDatasetVersionOperator
from hyperai_provider.operators.gear_task import GearTaskOperator
from hyperai_provider.operators.gear_workspace import GearWorkspaceOperator

__all__ = ["GearDatasetVersionOperator", "GearTaskOperator", "GearWorkspaceOperator"]
