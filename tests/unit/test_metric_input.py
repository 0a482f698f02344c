"""Metric records (output lines, receiver records) are validated before anything is stored; the metric
store assigns steps, clears keys and moves ingest cursors in one transaction. No engine needed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hyperai_provider.core.metric_container import WRAPPER, ContainerParts
from hyperai_provider.core.metric_input import (
    Refused,
    looks_like_metric,
    parse_output_line,
    parse_receiver_record,
)
from hyperai_provider.core.metric_store import Cursor, MetricClear, MetricParam, MetricPoint
from hyperai_provider.core.output import CONTINUED
from hyperai_provider.core.store import GearStore

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"metric": "loss", "value": 0.3, "step": 10}', MetricPoint("loss", 0.3, 10, NOW)),
        ('  {"metric": "acc", "value": 1}  ', MetricPoint("acc", 1.0, None, NOW)),
        ('{"metric": "acc", "value": 2, "step": 3.0}', MetricPoint("acc", 2.0, 3, NOW)),
        ('{"metric": "<b>x</b>", "value": -1e-3}', MetricPoint("<b>x</b>", -0.001, None, NOW)),
        ("plain output", None),
        ('{"event": "started", "metric_count": 3}', None),
        ('{"metric": "loss", "value": 0.3', None),  # not a whole object: plain output
        ("[1, 2]", None),
    ],
)
def test_metric_lines(line: str, expected: object) -> None:
    assert parse_output_line(line, NOW) == expected


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"metric": "loss", "value": NaN}', "the value is NaN"),
        ('{"metric": "loss", "value": -Infinity}', "the value is -Infinity"),
        ('{"metric": "loss", "value": 1e999}', "not a finite number"),
        ('{"metric": "loss", "value": "0.3"}', "is not a number"),
        ('{"metric": "loss", "value": true}', "is not a number"),
        ('{"metric": "loss"}', "has no 'value'"),
        ('{"metric": "loss", "value": 1, "epoch": 2}', "unknown key(s) 'epoch'"),
        ('{"metric": "loss", "value": 1, "step": -1}', "the step -1 is not an integer"),
        ('{"metric": "loss", "value": 1, "step": 1.5}', "the step 1.5 is not an integer"),
        ('{"metric": "", "value": 1}', "must have 1-200 characters"),
        ('{"metric": "a\\nb", "value": 1}', "has a control character"),
        ('{"metric": 3, "value": 1}', "is not a string"),
        ('{"metric": "x", "value": 1,}', "not valid JSON"),
        ('{"metric": "x", "value": 1, "step": ' + "[" * 5000 + "]" * 5000 + "}", "longer than 4096"),
        ('{"metric": "x", "value": [' + "[" * 2000 + "]" * 2000 + "]}", "nested too deeply"),
        ('{"metric": "x", "value": 1' + " " * 70000 + CONTINUED, "longer than 64 KiB"),
    ],
)
def test_bad_metric_lines_are_refused_with_a_reason(line: str, reason: str) -> None:
    parsed = parse_output_line(line, NOW)
    assert isinstance(parsed, Refused), parsed
    assert reason in parsed.reason


def test_the_cheap_test_lets_plain_output_through_untouched() -> None:
    assert not looks_like_metric("epoch 1: loss 0.3")
    assert not looks_like_metric("")
    assert looks_like_metric('  {"metric": "x", "value": 1}')


def receiver_record(method: str, path: str, body: object, at: object = NOW) -> bytes:
    text = body if isinstance(body, str) else json.dumps(body)
    return json.dumps({"at": at, "method": method, "path": path, "body": text}).encode()


def test_openbayestool_requests_become_points_parameters_and_clears() -> None:
    body = {"metrics": {"acc": [{"value": 0.98, "created_at": "2026-01-01T00:00:00"}]}}
    assert parse_receiver_record(receiver_record("PUT", "/job", body), NOW, 0) == [
        MetricPoint("acc", 0.98, None, NOW)
    ]
    params = {"parameters": {"lr": 0.01, "opt": "adam", "gone": ""}}
    assert parse_receiver_record(receiver_record("PUT", "/job", params), NOW, 0) == [
        MetricParam("lr", "0.01", NOW),
        MetricParam("opt", '"adam"', NOW),
        MetricParam("gone", '""', NOW),
    ]
    assert parse_receiver_record(receiver_record("DELETE", "/job/metrics/a%2Fb%20c", ""), NOW, 0) == [
        MetricClear("a/b c", NOW)
    ]
    assert parse_receiver_record(receiver_record("START", "", "listening"), NOW, 0) == []


def test_an_implausible_receiver_time_becomes_the_time_it_was_read() -> None:
    body = {"metrics": {"acc": [{"value": 1}]}}
    for at in (NOW + 3600, 5.0, "soon", True, None):
        (point,) = parse_receiver_record(receiver_record("PUT", "/job", body, at), NOW, NOW - 100)
        assert isinstance(point, MetricPoint) and point.at == NOW


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (receiver_record("PUT", "/job", '{"metrics": {"acc": [{"value": NaN}]}}'), "the value is NaN"),
        (receiver_record("PUT", "/job", '{"metrics": {"acc": [{"value": Infinity}]}}'), "Infinity"),
        (receiver_record("PUT", "/job", {"metrics": {"acc": [{"value": "high"}]}}), "is not a number"),
        (receiver_record("PUT", "/job", {"metrics": {"acc": 1}}), "not a list"),
        (receiver_record("PUT", "/job", {"metrics": {"acc": [{}]}}), "a point without a value"),
        (
            receiver_record("PUT", "/job", {"metrics": {"acc": [{"value": 1}] * 1001}}),
            "not a list of at most",
        ),
        (receiver_record("PUT", "/job", {"parameters": {"lr": [1, 2]}}), "not a string, number or boolean"),
        (receiver_record("PUT", "/job", {"parameters": {"lr": "x" * 2000}}), "longer than 1000"),
        (receiver_record("PUT", "/job", {"steal": 1}), "unknown key(s) 'steal'"),
        (receiver_record("PUT", "/job", "not json"), "body is not valid JSON"),
        (receiver_record("PUT", "/other", {}), "should not have passed on"),
        (receiver_record("DELETE", "/job/params/x", ""), "not of a metric"),
        (receiver_record("DELETE", "/job/metrics/%ff", ""), "invalid"),
        (receiver_record("ERROR", "", "cannot listen"), "did not start: cannot listen"),
        (b'{"at": 1, "method": "PUT"}', "without method, path and body"),
        (b"[]", "not a JSON object"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_bad_receiver_records_are_refused(raw: bytes, reason: str) -> None:
    parsed = parse_receiver_record(raw, NOW, 0)
    assert parsed and all(isinstance(item, Refused) for item in parsed), parsed
    assert reason in parsed[0].reason  # type: ignore[union-attr]


def test_the_wrapper_starts_the_receiver_detached_and_execs_the_command_unchanged() -> None:
    parts = ContainerParts((), {}, 23456, 1000)
    assert parts.command([]) == []
    wrapped = parts.command(["python3", "train.py", "--lr=0.1"])
    assert wrapped[:2] == ["/bin/sh", "-c"] and wrapped[3:] == ["hyperai", "python3", "train.py", "--lr=0.1"]
    assert wrapped[2].endswith('&))" ; exec "$@"') and " 23456 /hyperai/metrics 1000 3>&1 " in wrapped[2]
    assert WRAPPER.startswith(': "$(command -v python3')


@pytest.fixture
def store(tmp_path: Path) -> GearStore:
    return GearStore(f"sqlite:///{tmp_path / 'store.db'}")


def test_steps_follow_each_key_and_a_clear_starts_its_key_again(store: GearStore) -> None:
    metrics = store.metrics
    metrics.add(
        "g/1",
        [MetricPoint("acc", 0.1, None, 1), MetricPoint("loss", 2, None, 1), MetricPoint("acc", 0.2, None, 2)],
    )
    metrics.add("g/1", [MetricPoint("acc", 0.3, 10, 3), MetricPoint("acc", 0.4, None, 4)])
    metrics.add(
        "g/1", [MetricPoint("loss", 1, None, 5), MetricClear("loss", 6), MetricPoint("loss", 0.5, None, 7)]
    )
    assert [(p.key, p.step, p.value) for p in metrics.points("g/1")] == [
        ("acc", 1, 0.1), ("acc", 2, 0.2), ("acc", 10, 0.3), ("acc", 11, 0.4), ("loss", 1, 0.5)
    ]  # fmt: skip
    summary = {s.key: (s.last, s.last_step, s.count) for s in metrics.summary("g/1")}
    assert summary == {"acc": (0.4, 11, 4), "loss": (0.5, 1, 1)}
    assert metrics.last_values("g/1") == {"acc": 0.4, "loss": 0.5}
    assert metrics.points("g/2") == [] and metrics.last_values("g/2") == {}


def test_parameters_keep_their_last_value_and_clear_param_removes_one(store: GearStore) -> None:
    metrics = store.metrics
    metrics.add(
        "g/1", [MetricParam("lr", "0.1", 1), MetricParam("opt", '"sgd"', 1), MetricParam("lr", "0.01", 2)]
    )
    metrics.add("g/1", [MetricParam("opt", '""', 3)])
    assert metrics.params("g/1") == {"lr": 0.01}


def test_a_cursor_moves_once_so_a_batch_is_never_stored_twice(store: GearStore) -> None:
    metrics = store.metrics
    batch = [MetricPoint("acc", 1, None, 1)]
    assert metrics.cursor("g/1", "receiver") == Cursor()
    assert metrics.apply("g/1", batch, "receiver", Cursor(), Cursor(100)) is not None
    assert metrics.apply("g/1", batch, "receiver", Cursor(), Cursor(100)) is None  # read from a stale cursor
    assert metrics.cursor("g/1", "receiver") == Cursor(100)
    assert metrics.apply("g/1", [], "receiver", Cursor(100), Cursor(200, skipping=True)) == []
    assert metrics.cursor("g/1", "receiver") == Cursor(200, skipping=True)
    assert metrics.count("g/1") == 1


def test_deleting_an_execution_or_its_gear_deletes_its_metrics(store: GearStore) -> None:
    from hyperai_provider.core.metric_store import metric_cursors_table, metric_params_table, metrics_table

    for id_ in ("g/1", "g/2", "h/1"):
        store.metrics.apply(
            id_, [MetricPoint("a", 1, None, 1), MetricParam("p", "1", 1)], "receiver", Cursor(), Cursor(5)
        )
    store.delete_execution_row("g/1")
    assert store.metrics.count("g/1") == 0 and store.metrics.params("g/1") == {}
    assert store.metrics.cursor("g/1", "receiver") == Cursor()
    assert store.metrics.count("g/2") == 1
    with store.engine.begin() as connection:  # g/2 is a row of gear g
        from hyperai_provider.core.store import executions_table

        connection.execute(
            executions_table.insert().values(id="g/2", gear="g", number=2, state="succeeded", document="{}")
        )
    store.delete_gear_row("g")
    with store.engine.connect() as connection:
        for table in (metrics_table, metric_params_table, metric_cursors_table):
            remaining = {row.execution_id for row in connection.execute(table.select())}
            assert remaining == {"h/1"}, table.name
