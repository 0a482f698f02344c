"""``hyperai metrics GEAR/N [--json]``: an execution's metrics and parameters."""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from typing import Any

from hyperai_provider.cli.common import add_json_flag, print_json, print_table, service_from
from hyperai_provider.models import ExecutionMode


def register(subparsers: Any) -> None:
    metrics = subparsers.add_parser(
        "metrics",
        help="an execution's metrics (openbayestool, metric lines) and parameters",
        description="Per metric: its last value and step and how many points it has; --json: every point. "
        "Metric lines are JSON objects on one line of output: "
        '{"metric": "loss", "value": 0.3, "step": 10} (step optional).',
    )
    metrics.add_argument("execution_id", help="'<gear>/<n>'")
    add_json_flag(metrics)
    metrics.set_defaults(handler=show_metrics)


def _time(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).isoformat()


def show_metrics(args: argparse.Namespace) -> int:
    service = service_from(args)
    record = service.access().execution(args.execution_id)  # another user's private gear: "does not exist"
    if record.mode is ExecutionMode.WORKSPACE and not record.closed:
        from hyperai_provider.core.metrics import MetricsIngest

        MetricsIngest(
            service.backend, record, on_line=lambda _line: None
        ).finish()  # nobody follows a workspace
    store = service.store.metrics
    params = store.params(record.id)
    if args.json:
        points: dict[str, list[dict[str, Any]]] = {}
        for point in store.points(record.id):
            points.setdefault(point.key, []).append(
                {"step": point.step, "value": point.value, "at": _time(point.at)}
            )
        print_json(
            {"execution": record.id, "state": record.state.value, "metrics": points, "parameters": params}
        )
        return 0
    summary = store.summary(record.id)
    if not summary and not params:
        print(f"{record.id} ({record.state.value}) has no metrics or parameters.")
        return 0
    if summary:
        print_table(
            ["metric", "last", "step", "points", "at"],
            [[s.key, f"{s.last:.6g}", s.last_step, s.count, _time(s.at)[:19]] for s in summary],
        )
    if params:
        if summary:
            print()
        print_table(["parameter", "value"], [[key, json.dumps(value)] for key, value in params.items()])
    return 0
