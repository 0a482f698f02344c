"""Validating what an execution reports as metrics: every record is untrusted input from the container.

Two sources, one set of rules:

- **Output lines** (any image): a line of the program's output that is exactly one JSON object with the
  keys ``metric`` and ``value`` and optionally ``step``, nothing else::

      {"metric": "loss", "value": 0.3, "step": 10}

  ``metric`` is the name (1-200 characters, no control characters), ``value`` a finite number (not a
  string, not a boolean; ``NaN``/``Infinity`` are refused), ``step`` an integer >= 0 (default: the
  key's last step + 1, the first being 1). Surrounding whitespace is allowed; the line may be at most
  4096 characters. Any other line, including JSON without a ``metric`` key, is plain output.
- **The in-container receiver's records** (``openbayestool``, see :mod:`core.metrics_receiver`): one
  JSON line per HTTP request, whose ``body`` is parsed here: ``{"metrics": {key: [{"value": v, ...}]}}``,
  ``{"parameters": {key: value}}``, or a ``DELETE .../metrics/<quoted key>``.

A record that breaks a rule is refused as a whole with a :class:`Refused` reason (logged by the caller,
never stored); names are stored as given and escaped by whatever shows them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from hyperai_provider.core.metric_store import MetricClear, MetricEvent, MetricParam, MetricPoint
from hyperai_provider.core.output import CONTINUED

MAX_KEY = 200
MAX_LINE = 4096
"""Characters of an output line that can be a metric line."""
MAX_PARAM = 1000
"""Characters of a parameter's JSON text."""
MAX_POINTS_PER_REQUEST = 1000
MAX_STEP = 2**53
BASE_PATH = "/job"
"""The receiver's URL path (``JOB_UPDATE_URL`` ends with it); must match :mod:`core.metrics_receiver`."""
LINE_KEYS = frozenset({"metric", "value", "step"})


@dataclass(frozen=True, slots=True)
class Refused:
    reason: str


class _NonFinite:
    """What ``NaN``, ``Infinity`` and ``-Infinity`` parse to: kept so the refusal can say which."""

    def __init__(self, name: str) -> None:
        self.name = name


def _loads(text: str | bytes) -> Any:
    """``json.loads`` where NaN/Infinity become :class:`_NonFinite`; ValueError for anything invalid."""
    try:
        return json.loads(text, parse_constant=_NonFinite)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def shown(key: object) -> str:
    """A name as a log line shows it: repr-escaped, cut at 60 characters."""
    text = repr(key)
    return text if len(text) <= 60 else text[:57] + "..."


def check_key(key: object) -> str:
    if not isinstance(key, str):
        raise ValueError(f"the name {shown(key)} is not a string")
    if not key or len(key) > MAX_KEY:
        raise ValueError(f"the name {shown(key)} must have 1-{MAX_KEY} characters")
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in key):
        raise ValueError(f"the name {shown(key)} has a control character")
    return key


def check_value(key: str, value: object) -> float:
    if isinstance(value, _NonFinite):
        raise ValueError(f"{shown(key)}: the value is {value.name}, not a finite number")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{shown(key)}: the value {shown(value)} is not a number")
    try:
        number = float(value)
    except OverflowError:
        raise ValueError(f"{shown(key)}: the value is too large for a float") from None
    if not math.isfinite(number):
        raise ValueError(f"{shown(key)}: the value {number} is not a finite number")
    return number


def check_step(key: str, step: object) -> int | None:
    if step is None:
        return None
    if isinstance(step, float) and step.is_integer():
        step = int(step)
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= MAX_STEP:
        raise ValueError(f"{shown(key)}: the step {shown(step)} is not an integer from 0 to 2**53")
    return step


def check_param(key: str, value: object) -> str:
    if isinstance(value, _NonFinite):
        raise ValueError(f"parameter {shown(key)}: the value is {value.name}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"parameter {shown(key)}: the value {value} is not a finite number")
    if value is not None and not isinstance(value, (str, int, float, bool)):
        raise ValueError(f"parameter {shown(key)}: the value is not a string, number or boolean")
    text = json.dumps(value)
    if len(text) > MAX_PARAM:
        raise ValueError(f"parameter {shown(key)}: the value is longer than {MAX_PARAM} characters")
    return text


def looks_like_metric(line: str) -> bool:
    """The cheap test every output line takes: could it be a metric line at all?"""
    return line[:1] == "{" or (line[:1].isspace() and line.lstrip()[:1] == "{")


def parse_output_line(line: str, at: float) -> MetricPoint | Refused | None:
    """A metric from one line of output; None when the line is no metric line."""
    text = line.strip()
    if not text.startswith("{") or '"metric"' not in text:
        return None
    if text.endswith(CONTINUED):
        return Refused("a metric line longer than 64 KiB")
    if not text.endswith("}"):
        return None
    if len(text) > MAX_LINE:
        return Refused(f"a metric line longer than {MAX_LINE} characters")
    try:
        data = _loads(text)
    except ValueError as error:
        return Refused(f"a metric line that is not valid JSON ({error})")
    if not isinstance(data, dict) or "metric" not in data:
        return None
    try:
        key = check_key(data["metric"])
        if "value" not in data:
            raise ValueError(f"{shown(key)}: the line has no 'value'")
        unknown = sorted(set(data) - LINE_KEYS)
        if unknown:
            raise ValueError(
                f"{shown(key)}: unknown key(s) {', '.join(map(shown, unknown))}; a metric line has only "
                "'metric', 'value' and 'step'"
            )
        return MetricPoint(key, check_value(key, data["value"]), check_step(key, data.get("step")), at)
    except ValueError as error:
        return Refused(str(error))


def parse_receiver_record(raw: bytes, now: float, earliest: float) -> list[MetricEvent | Refused]:
    """The events of one record the receiver wrote (one request); its time is kept when plausible
    (between ``earliest`` and a minute after ``now``), else ``now``."""
    try:
        record = _loads(raw)
    except ValueError as error:
        return [Refused(f"a receiver record that is not valid JSON ({error})")]
    if not isinstance(record, dict):
        return [Refused("a receiver record that is not a JSON object")]
    method, path, body, at = (record.get(name) for name in ("method", "path", "body", "at"))
    if not isinstance(method, str) or not isinstance(path, str) or not isinstance(body, str):
        return [Refused("a receiver record without method, path and body")]
    if isinstance(at, bool) or not isinstance(at, (int, float)) or not earliest <= at <= now + 60:
        at = now
    at = float(at)
    if method == "START":
        return []
    if method == "ERROR":
        return [Refused(f"the metrics receiver did not start: {body[:200]}")]
    try:
        if method == "DELETE":
            return [_clear(path, at)]
        if method == "PUT" and path == BASE_PATH:
            return _put(body, at)
    except ValueError as error:
        return [Refused(str(error))]
    return [Refused(f"a request the receiver should not have passed on ({method[:10]} {shown(path)})")]


def _clear(path: str, at: float) -> MetricClear:
    prefix = BASE_PATH + "/metrics/"
    if not path.startswith(prefix):
        raise ValueError(f"a DELETE of {shown(path)}, not of a metric")
    return MetricClear(check_key(unquote(path.removeprefix(prefix), errors="strict")), at)


def _put(body: str, at: float) -> list[MetricEvent | Refused]:
    try:
        data = _loads(body)
    except ValueError as error:
        raise ValueError(f"a request whose body is not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise ValueError("a request whose body is not a JSON object")
    unknown = sorted(set(data) - {"metrics", "parameters"})
    if unknown:
        raise ValueError(f"a request with unknown key(s) {', '.join(map(shown, unknown))}")
    metrics, parameters = data.get("metrics", {}), data.get("parameters", {})
    if not isinstance(metrics, dict) or not isinstance(parameters, dict):
        raise ValueError("a request whose 'metrics' or 'parameters' is not a JSON object")
    events: list[MetricEvent | Refused] = []
    for key, points in metrics.items():
        events.extend(_points(key, points, at))
    for key, value in parameters.items():
        try:
            events.append(MetricParam(check_key(key), check_param(key, value), at))
        except ValueError as error:
            events.append(Refused(str(error)))
    return events


def _points(key: str, points: object, at: float) -> list[MetricEvent | Refused]:
    try:
        check_key(key)
        if not isinstance(points, list) or len(points) > MAX_POINTS_PER_REQUEST:
            raise ValueError(f"{shown(key)}: not a list of at most {MAX_POINTS_PER_REQUEST} points")
    except ValueError as error:
        return [Refused(str(error))]
    events: list[MetricEvent | Refused] = []
    for point in points:
        try:
            if not isinstance(point, dict) or "value" not in point:
                raise ValueError(f"{shown(key)}: a point without a value")
            events.append(
                MetricPoint(key, check_value(key, point["value"]), check_step(key, point.get("step")), at)
            )
        except ValueError as error:
            events.append(Refused(str(error)))
    return events
