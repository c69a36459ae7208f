"""Which rows each bus event becomes."""

from __future__ import annotations

import math

from agentvisor.events import (
    ConfigReloaded,
    ConnectionOpened,
    ConnectionRefused,
    InstanceExited,
    LogLines,
    MessagePoisoned,
    MetricPoint,
    MetricsSampled,
    OperatorAction,
)
from agentvisor.store.event_rows import rows_for_event
from agentvisor.store.inserts import EventRow, MetricRow
from agentvisor.store.records import Metric


def test_an_operator_action_on_the_whole_system_has_no_service() -> None:
    (row,) = rows_for_event(OperatorAction("shutdown", "", "signal", "ok", "bye", 1.0))
    assert isinstance(row, EventRow)
    assert (row.service, row.action, row.source, row.outcome) == (None, "shutdown", "signal", "ok")


def test_an_exit_says_whether_it_was_expected() -> None:
    (row,) = rows_for_event(InstanceExited("web", 0, 7, 0, True, 3.25, 1.0))
    assert isinstance(row, EventRow)
    assert row.outcome == "expected"
    assert row.message == "pid 7 exited with 0 (expected) after 3.2s"


def test_a_rejected_reload_counts_its_errors() -> None:
    (row,) = rows_for_event(ConfigReloaded(False, (), (), (), (), ("a", "b"), 1.0))
    assert isinstance(row, EventRow)
    assert (row.outcome, row.message) == ("rejected", "reload rejected: 2 error(s)")
    assert row.details["errors"] == ["a", "b"]


def test_unknown_metrics_and_non_finite_values_are_skipped() -> None:
    points = (
        MetricPoint("web", 0, "cpu", 12.5),
        MetricPoint("web", 0, "latency", 1.0),
        MetricPoint("web", 0, "memory", math.nan),
    )
    assert rows_for_event(MetricsSampled(points, 5.0)) == [
        MetricRow(5.0, "web", 0, Metric.CPU, 12.5)
    ]


def test_open_and_refused_connections_and_bus_log_lines_are_not_stored() -> None:
    assert rows_for_event(ConnectionOpened("c", "ip", "web", "web:0", None, "random", 1.0)) == []
    assert rows_for_event(ConnectionRefused("ip", 1013, "full", None, 1.0)) == []
    # Lines come through StateStore.record_log_lines, where drops are counted.
    assert rows_for_event(LogLines("web", 0, "stdout", 1, ("a", "b"), 1.0)) == []


def test_counters_add_up_and_gauges_average() -> None:
    assert {metric for metric in Metric if metric.is_counter} == {
        Metric.MESSAGES,
        Metric.ERRORS,
        Metric.RESTARTS,
    }


def test_issue_9_a_poisoned_message_names_agent_instance_session_and_message() -> None:
    (row,) = rows_for_event(MessagePoisoned("chat", 1, 42, "s-1", "m-7", 2, 1.0))
    assert isinstance(row, EventRow)
    assert (row.kind, row.service, row.replica, row.outcome) == (
        "message.poisoned",
        "chat",
        1,
        "poisoned",
    )
    assert "message 'm-7' of session s-1" in row.message
    assert row.details == {"session_id": "s-1", "message_id": "m-7", "deaths": 2, "pid": 42}
