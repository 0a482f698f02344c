"""Airflow operators for Gear executions."""

from hyperai_provider.operators.gear_task import GearTaskOperator

__all__ = ["GearTaskOperator"]
