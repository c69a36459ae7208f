"""Pure formatting of agentvisorctl's output."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console

from agentvisor.cli import render

NOW = 1_700_000_000.0


def iso(at: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def text_of(renderable: Any) -> str:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(renderable)
    output = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(output, str)
    return output


def instance(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "replica": 0,
        "state": "running",
        "pid": 4242,
        "port": 8101,
        "uptime_seconds": 252.0,
        "restarts": 0,
        "reason": "",
        "next_retry_at": None,
        "cpu_percent": 1.5,
        "memory_bytes": 50 * 2**20,
        "health": {"status": "healthy"},
    }
    data.update(overrides)
    return data


def service(name: str = "weather", **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": name,
        "status": "running",
        "replicas": {"running": 1, "desired": 1},
        "health": "healthy",
        "stats": {"uptime_seconds": 252.0, "cpu_percent": 1.5, "memory_bytes": 50 * 2**20},
        "instances": [instance()],
    }
    data.update(overrides)
    return data


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (None, "-"),
        (-5, "0s"),
        (0, "0s"),
        (3.9, "3s"),
        (59, "59s"),
        (60, "1m00s"),
        (252, "4m12s"),
        (3599, "59m59s"),
        (3600, "1h00m"),
        (2 * 3600 + 3 * 60 + 59, "2h03m"),
        (86399, "23h59m"),
        (86400, "1d0h"),
        (3 * 86400 + 4 * 3600 + 120, "3d4h"),
    ],
)
def test_humanize_duration(seconds: float | None, expected: str) -> None:
    assert render.humanize_duration(seconds) == expected


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (None, "-"),
        (0, "0 B"),
        (1023, "1023 B"),
        (1536, "1.5 KiB"),
        (128.5 * 2**20, "128.5 MiB"),
        (3 * 2**30, "3.0 GiB"),
        (5 * 2**40, "5120.0 GiB"),
    ],
)
def test_humanize_bytes(size: float | None, expected: str) -> None:
    assert render.humanize_bytes(size) == expected


def test_parse_time_reads_the_api_timestamps_and_rejects_garbage() -> None:
    assert render.parse_time(iso(NOW)) == NOW
    assert render.parse_time(None) is None
    assert render.parse_time("yesterday") is None


def test_status_table_shows_one_row_per_service_with_humanized_columns() -> None:
    output = text_of(render.status_view([service()], NOW))
    header, row = output.splitlines()
    assert " ".join(header.split()) == "NAME STATE INST PID PORT UPTIME CPU MEM SESS HEALTH"
    assert " ".join(row.split()) == "weather running 1/1 4242 8101 4m12s 1.5% 50.0 MiB - healthy"


def test_status_table_lists_pids_and_ports_of_replicas_compactly() -> None:
    replicas = [instance(replica=i, pid=100 + i, port=8100 + i) for i in range(5)]
    output = text_of(
        render.status_table(
            [service(replicas={"running": 5, "desired": 5}, instances=replicas)], NOW
        )
    )
    assert "100,101,102,+2" in output
    assert "8100,8101,8102,+2" in output
    assert "5/5" in output


def test_fatal_service_shows_its_next_retry_and_reason() -> None:
    fatal = instance(
        state="fatal",
        pid=None,
        reason="exited with code 3 five times in a row",
        next_retry_at=iso(NOW + 252),
    )
    row = service(
        "broken", status="fatal", instances=[fatal], replicas={"running": 0, "desired": 1}
    )
    output = text_of(render.status_view([row, service()], NOW))
    assert output.splitlines()[-1] == (
        "broken: retry in 4m12s: exited with code 3 five times in a row"
    )


def test_status_never_cuts_names_on_a_narrow_terminal() -> None:
    console = Console(file=io.StringIO(), width=60, color_system=None)
    console.print(render.status_view([service("a-rather-long-service-name")], NOW))
    assert "a-rather-long-service-name" in console.file.getvalue()  # type: ignore[attr-defined]


def test_fatal_without_cooldown_says_it_waits_for_an_operator() -> None:
    fatal = instance(state="fatal", pid=None, reason="crashed", next_retry_at=None)
    note = render.trouble_note({"instances": [fatal]}, NOW)
    assert note == "no automatic retry; start it by hand: crashed"


def test_states_are_coloured_by_meaning() -> None:
    assert render.styled_state("running").style == "green"
    assert render.styled_state("backoff").style == "yellow"
    assert render.styled_state("starting").style == "yellow"
    assert render.styled_state("fatal").style == "bold red"
    assert render.styled_state("exited").style == "red"
    assert render.styled_state("stopped").style == "dim"


def test_service_detail_shows_instances_and_config() -> None:
    detail = service(config={"command": "sleep 1", "environment": {"API_KEY": "***"}})
    output = text_of(render.service_detail(detail, NOW))
    assert "instances" in output
    assert "4242" in output
    assert '{"API_KEY": "***"}' in output


def test_service_detail_shows_the_autoscalers_bounds_and_last_decision() -> None:
    policy = {
        "min": 1,
        "max": 3,
        "desired": 2,
        "retiring": [3],
        "last_decision": {"action": "hold", "reason": "sessions ask for 2"},
        "last_change": {
            "reason": "sessions ask for 2 at target_sessions 2",
            "message": "1 → 2 replicas: sessions ask for 2 at target_sessions 2",
            "at": NOW - 12,
        },
    }
    detail = service(autoscale=policy, replicas={"running": 1, "desired": 2})
    output = " ".join(text_of(render.service_detail(detail, NOW)).split())
    assert (
        "autoscale 1..3 replicas, desired 2, running 1, retiring 3; last change 12s ago: "
        "1 → 2 replicas: sessions ask for 2 at target_sessions 2; now: hold, sessions ask for 2"
    ) in output
    assert "autoscale" not in text_of(render.service_detail(service(autoscale=None), NOW))


def test_status_shows_desired_against_running_and_the_bounds_of_autoscaled_agents() -> None:
    scaled = service(
        "chat", replicas={"running": 1, "desired": 2, "autoscale": {"min": 0, "max": 3}}
    )
    fixed = service("fixed", replicas={"running": 2, "desired": 2, "autoscale": None})
    lines = text_of(render.status_table([scaled, fixed], NOW)).splitlines()
    assert "1/2 (0-3)" in next(line for line in lines if line.startswith("chat"))
    fixed_line = next(line for line in lines if line.startswith("fixed"))
    assert "2/2" in fixed_line
    assert "(" not in fixed_line


def test_reload_lines_name_what_changed() -> None:
    data = {"added": ["gamma"], "removed": ["beta"], "restarted": [], "changed": True}
    assert render.reload_lines(data) == ["reloaded: added gamma; removed beta"]
    assert render.reload_lines({"added": [], "removed": []}) == ["reloaded: no changes"]


def test_reload_lines_of_a_dry_run_say_nothing_was_done() -> None:
    data = {"added": ["gamma"], "dry_run": True, "environment": {"set": ["X"], "unset": []}}
    assert render.reload_lines(data) == [
        "dry run, a reload would do (nothing was done): added gamma"
    ]
    assert render.reload_lines({"added": [], "dry_run": True}) == [
        "dry run: a reload would change nothing"
    ]


def test_environment_line_names_whose_environment_and_each_variable() -> None:
    use = {"set": ["HOME", "TOKEN"], "unset": ["PORT"]}
    assert render.environment_line(use, "this shell's") == (
        "${VAR} read from this shell's environment; set: HOME, TOKEN; unset: PORT"
    )
    assert render.environment_line({"set": [], "unset": []}, "this shell's") is None


def test_operation_line_says_when_the_service_is_still_settling() -> None:
    done = {"service_id": "weather", "settled": True, "service": service()}
    assert render.operation_line(done) == "weather: running (1/1)"
    pending = {**done, "settled": False, "elapsed_seconds": 60.0}
    assert render.operation_line(pending).endswith("still settling after 1m00s")


def test_log_lines_carry_the_instance_only_when_asked() -> None:
    line = {"instance": 2, "text": "hello [not markup]"}
    assert render.log_line(line, show_instance=True) == "[2] hello [not markup]"
    assert render.log_line(line, show_instance=False) == "hello [not markup]"
