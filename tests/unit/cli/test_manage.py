"""agentvisorctl's editing and observing commands: parsing, bodies and output, without a server.

Commands run against ``httpx.MockTransport`` fakes of the admin API, so
what is sent (method, path, body, the ``X-Agentvisor-Source`` header) and
what is printed are both checked.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console

from agentvisor.cli import ctl, manage, observe, reports
from agentvisor.cli.context import Context, UsageError
from agentvisor.client import AgentvisorClient, Unreachable

Handler = Callable[[httpx.Request], httpx.Response]


def ok(data: Any, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json={"success": True, "data": data})


def ctx_client(handler: Handler) -> AgentvisorClient:
    return AgentvisorClient(
        "http://agentvisor.test", transport=httpx.MockTransport(handler), source="cli"
    )


def context(handler: Handler, *, as_json: bool = False) -> Context:
    return Context(ctx_client(handler), Console(width=200, highlight=False), as_json)


def parse(*argv: str) -> Any:
    return ctl.build_parser().parse_args(["-s", "http://x", *argv])


@pytest.mark.parametrize(
    ("text", "condition"),
    [
        ("header.x-user-tier=vip", {"field": "header.x-user-tier", "operator": "equals"}),
        ("query.a!=b", {"field": "query.a", "operator": "not_equals"}),
        ("user_agent~=bot", {"field": "user_agent", "operator": "contains"}),
        ("path^=/v2", {"field": "path", "operator": "starts_with"}),
        ("origin$=.example.com", {"field": "origin", "operator": "ends_with"}),
        ("header.x=a=b", {"field": "header.x", "operator": "equals", "value": "a=b"}),
    ],
)
def test_conditions_are_read_like_the_seed_writes_them(
    text: str, condition: dict[str, str]
) -> None:
    parsed = manage.parse_condition(text)
    assert parsed == {**parsed, **condition}
    assert reports.condition_text(parsed) == text


def test_a_field_alone_means_it_exists() -> None:
    assert manage.parse_condition("query.debug") == {"field": "query.debug", "operator": "exists"}
    with pytest.raises(UsageError):
        manage.parse_condition("=vip")


def test_register_sends_an_absolute_agent_path_and_only_what_was_given(tmp_path: Path) -> None:
    args = parse(
        "register", "weather", "agents/weather.py", "--tags", "weather, info",
        "--max-sessions", "100", "--no-auto-restart", "--port", "8081", "--env", "K=v=w",
    )  # fmt: skip
    body = manage.register_body(args)
    assert body["agent_factory_path"] == str(Path("agents/weather.py").resolve())
    assert body["tags"] == ["weather", "info"]
    assert body["port"] == 8081
    assert body["environment"] == {"K": "v=w"}
    assert body["config"] == {"max_sessions": 100, "auto_restart": False}
    assert body["auto_start"] is None
    assert body["command"] is None


@pytest.mark.parametrize(
    "argv",
    [
        ["register", "x"],
        ["register", "x", "a.py", "--command", "node s.js"],
        ["register", "x", "--command", "c", "--env", "NOVALUE"],
        ["scale", "x", "-1"],
        ["events", "-n", "0"],
        ["logs", "search", "q", "-n", "5000"],
        ["logs", "search", " "],
        ["monitor", "--interval", "0.01"],
        ["route", "create", "r", "--condition", "=x"],
    ],
)
def test_impossible_command_lines_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # The server is never reached: a usage error is found first.
    assert ctl.main(["-s", "http://127.0.0.1:9", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("agentvisorctl: ")
    assert "Traceback" not in err


@pytest.mark.parametrize("argv", [["route"], ["logs"], ["route", "create"], ["scale", "x", "two"]])
def test_incomplete_subcommands_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        ctl.main(["-s", "http://x", *argv])
    assert exit_info.value.code == 2


def test_register_posts_the_body_as_cli_and_prints_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    seen: list[httpx.Request] = []

    def api(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        service = {"status": "starting"}
        return ok(
            {
                "service_id": "0b4c",
                "name": "echo",
                "endpoint": "ws://127.0.0.1:8101",
                "autostart": True,
                "service": service,
            },
            201,
        )

    args = parse("register", "echo", "--command", "node s.js {port}", "--replicas", "2")
    assert manage.cmd_register(context(api), args) == 0
    [request] = seen
    assert (request.method, request.url.path) == ("POST", "/api/v1/services")
    assert request.headers["X-Agentvisor-Source"] == "cli"
    assert json.loads(request.content) == {
        "name": "echo",
        "command": "node s.js {port}",
        "replicas": 2,
    }
    assert capsys.readouterr().out == ("registered echo (id 0b4c): starting, ws://127.0.0.1:8101\n")


def test_route_create_and_list(capsys: pytest.CaptureFixture[str]) -> None:
    rule = {
        "name": "vip",
        "priority": 10,
        "enabled": True,
        "action": "route",
        "conditions": [{"field": "header.x-user-tier", "operator": "equals", "value": "vip"}],
        "target_agents": [],
        "target_tags": ["fast"],
        "target_strategy": "least_connections",
    }
    bodies: list[Any] = []

    def api(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            bodies.append(json.loads(request.content))
            return ok({"rule": rule}, 201)
        return ok({"rules": [rule], "total": 1, "page": {"has_next": False}})

    args = parse(
        "route", "create", "vip", "--condition", "header.x-user-tier=vip",
        "--target-tag", "fast", "--strategy", "least_connections", "--priority", "10",
    )  # fmt: skip
    assert manage.cmd_route_create(context(api), args) == 0
    assert bodies == [
        {
            "name": "vip",
            "priority": 10,
            "conditions": [{"field": "header.x-user-tier", "operator": "equals", "value": "vip"}],
            "target_tags": ["fast"],
            "target_strategy": "least_connections",
        }
    ]
    assert manage.cmd_route_list(context(api), parse("route", "list")) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        "created routing rule vip: when header.x-user-tier=vip → tags fast by least_connections"
    )
    assert out[1].split() == ["NAME", "PRIO", "ON", "WHEN", "THEN"]
    assert out[2].split()[:4] == ["vip", "10", "yes", "header.x-user-tier=vip"]


def test_health_exits_1_when_an_instance_fails(capsys: pytest.CaptureFixture[str]) -> None:
    result = {
        "name": "web",
        "status": "degraded",
        "healthy": False,
        "results": [
            {"instance": 0, "ok": True, "skipped": False, "message": "ok", "response_time_ms": 1.5},
            {"instance": 1, "ok": False, "skipped": False, "message": "HTTP 503",
             "response_time_ms": 2.0},
        ],
    }  # fmt: skip
    assert observe.cmd_health(context(lambda _r: ok(result)), parse("health", "web")) == 1
    assert capsys.readouterr().out.splitlines() == [
        "web: degraded",
        "  [0] ok in 1.5 ms: ok",
        "  [1] FAILED in 2 ms: HTTP 503",
    ]


def test_events_follow_polls_without_a_stream_and_prints_each_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def event(number: int, at: float) -> dict[str, Any]:
        return {
            "id": number,
            "at": f"T{number}",
            "timestamp": at,
            "kind": "operator.action",
            "service": "web",
            "instance": None,
            "action": "stop",
            "source": "cli",
            "outcome": "ok",
            "message": f"event {number}",
        }

    pages = [[event(2, 20.0), event(1, 10.0)], [event(3, 30.0), event(2, 20.0)], []]
    asked: list[str | None] = []

    def api(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/stream"):  # an agentvisor without the stream
            return httpx.Response(404, json={"success": False, "error": {"code": "NOT_FOUND"}})
        asked.append(request.url.params.get("since"))
        return ok({"events": pages.pop(0), "page": {}})

    polls = iter([None, None])

    def sleep(_seconds: float) -> None:
        if next(polls, "stop") == "stop":
            raise KeyboardInterrupt

    assert observe.cmd_events(context(api), parse("events", "-f"), sleep=sleep) == 0
    assert asked == [None, "20.0", "30.0"]
    assert capsys.readouterr().out.splitlines() == [
        "T1 web stop (cli): event 1",
        "T2 web stop (cli): event 2",
        "T3 web stop (cli): event 3",
    ]


def test_monitor_json_prints_one_document_per_refresh(capsys: pytest.CaptureFixture[str]) -> None:
    def api(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/overview"):
            return ok({"services": {"total": 0}})
        return ok({"services": [], "page": {"has_next": False}})

    refreshes = iter([None])

    def sleep(_seconds: float) -> None:
        if next(refreshes, "stop") == "stop":
            raise KeyboardInterrupt

    ctx = context(api, as_json=True)
    assert observe.cmd_monitor(ctx, parse("monitor"), sleep=sleep) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert json.loads(lines[0]) == {"overview": {"services": {"total": 0}}, "services": []}


def test_monitor_into_a_pipe_prints_each_frame_as_it_comes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def api(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/overview"):
            return ok({"services": {"total": 0}})
        return ok({"services": [], "page": {"has_next": False}})

    seen: list[str] = []

    def sleep(_seconds: float) -> None:
        seen.append(capsys.readouterr().out)
        if len(seen) == 2:
            raise KeyboardInterrupt

    ctx = Context(ctx_client(api), Console(width=120, highlight=False), False)
    assert not ctx.console.is_terminal
    assert observe.cmd_monitor(ctx, parse("monitor"), sleep=sleep) == 0
    assert len(seen) == 2
    assert all("services" in frame.lower() for frame in seen)


def test_overview_and_lines_render_without_a_server() -> None:
    overview = {
        "services": {"total": 2, "by_state": {"running": 1, "fatal": 1}},
        "instances": {"total": 3, "running": 2},
        "connections": {"active": 4, "total": 9, "peak_today": 5},
        "sessions": {"active": 1, "total": 7, "completed": 6},
        "performance": {"avg_response_time_ms": 3.5, "error_rate": 0.0},
        "resources": {"total_cpu_percent": 12.0, "total_memory_mb": 80.5,
                      "agentvisor": {"pid": 42, "cpu_percent": 1.0, "memory_mb": 40.0}},
        "uptime_seconds": 65,
    }  # fmt: skip
    console = Console(width=200, record=True)
    console.print(reports.overview_view(overview))
    text = console.export_text()
    assert "2 (1 fatal, 1 running)" in text
    assert "4 active, 9 since start, peak today 5" in text
    assert "agentvisor pid 42" in text
    assert "1m05s" in text
    scaled = {"name": "w", "replicas": {"previous": 1, "desired": 3}, "service": {}}
    assert reports.scaled_line(scaled) == "w: scaled from 1 to 3 replicas (0 running now)"
    gone = {"name": "w", "stopped": False, "elapsed_seconds": 60}
    assert reports.unregistered_line(gone).endswith("still stopping after 1m00s")
    state = {"id": 1, "at": "T", "service": "w", "instance": 0, "old": "running",
             "new": "backoff", "source": "supervisor", "message": ""}  # fmt: skip
    assert reports.event_line(state) == "T w:0 running → backoff (supervisor)"


def test_events_follow_reads_the_live_stream_until_it_ends(
    capsys: pytest.CaptureFixture[str],
) -> None:
    stream = (
        "retry: 3000\n: ready\n\n"
        'event: operator.action\ndata: {"action": "stop", "target": "web", "source": "cli", '
        '"outcome": "ok", "message": "stop requested by cli", "at": 0}\n\n'
        ": keepalive\n\n"
        'event: instance.state\ndata: {"service": "web", "replica": 0, "old": "running", '
        '"new": "stopping", "reason": "stopped by cli", "at": 1}\n\n'
        "event: broken\ndata: not json\n\n"
    )
    asked: list[str] = []

    def api(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url.params))
        if request.url.path.endswith("/stream"):
            return httpx.Response(200, text=stream, headers={"Content-Type": "text/event-stream"})
        return httpx.Response(
            503,
            json={"success": False, "error": {"code": "STORE_UNAVAILABLE", "message": "no store"}},
        )

    with pytest.raises(Unreachable, match="the event stream ended"):
        observe.cmd_events(context(api), parse("events", "-f", "--service", "web"))
    captured = capsys.readouterr()
    assert captured.err == "agentvisorctl: no store; following new events only\n"
    assert captured.out.splitlines() == [
        "1970-01-01T00:00:00Z web stop (cli): stop requested by cli",
        "1970-01-01T00:00:01Z web:0 running → stopping: stopped by cli",
    ]
    assert "service_id=web" in asked[-1]
    assert "operator.action" in asked[-1]


def test_a_refused_edit_lists_every_problem(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    errors = ["agentvisor.toml:9:1 agents.y.replicas: bad", "agentvisor.toml:10:1 agents.y.x: bad"]

    def api(_request: httpx.Request) -> httpx.Response:
        error = {"code": "CONFIG_INVALID", "message": "invalid config: 2 problems", "details": {}}
        error["details"] = {"errors": errors}
        return httpx.Response(422, json={"success": False, "error": error})

    real = AgentvisorClient

    def fake(server: str, **options: Any) -> AgentvisorClient:
        return real(server, transport=httpx.MockTransport(api), **options)

    monkeypatch.setattr(ctl, "AgentvisorClient", fake)
    assert ctl.main(["-s", "http://x", "scale", "y", "2"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "agentvisorctl: invalid config: 2 problems",
        *(f"  {line}" for line in errors),
    ]
