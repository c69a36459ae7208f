"""``agentvisorctl`` commands that look: stats, monitor, health, logs search, events.

``monitor`` redraws a rich view every ``--interval`` seconds until Ctrl-C
(``rich.live.Live``); with ``--json`` it prints one JSON document per
refresh instead. ``events -f`` follows the live event stream
(``/api/v1/events/stream``) after the last events of the audit log, or, from
an agentvisor without the stream, polls the audit log with ``since`` (the
time of the newest event seen) and prints each new event once.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rich.live import Live

from agentvisor.cli import render, reports
from agentvisor.cli.context import EXIT_FAILED, EXIT_OK, PAGE, UsageError, all_services
from agentvisor.client import ApiError, Unreachable

if TYPE_CHECKING:
    from agentvisor.cli.context import Context

#: Seconds between polls of ``events -f``.
FOLLOW_INTERVAL = 1.0
MIN_INTERVAL = 0.2


def cmd_stats(ctx: Context, _args: argparse.Namespace) -> int:
    data = ctx.client.stats()
    if ctx.json:
        ctx.out(render.to_json(data))
    else:
        ctx.console.print(reports.overview_view(data))
    return EXIT_OK


def cmd_health(ctx: Context, args: argparse.Namespace) -> int:
    data = ctx.client.check_health(args.name)
    if ctx.json:
        ctx.out(render.to_json(data))
    else:
        for line in reports.health_check_lines(data):
            ctx.out(line)
    return EXIT_OK if data.get("healthy") else EXIT_FAILED


def cmd_logs_search(ctx: Context, args: argparse.Namespace) -> int:
    data = ctx.client.search_logs(args.query, service=args.service, limit=args.limit)
    lines = list(reversed(data["lines"]))  # oldest first, like a log
    if ctx.json:
        ctx.out(render.to_json(data))
    elif not lines:
        ctx.err(f"no stored log line matches {args.query!r}")
        return EXIT_FAILED
    else:
        for line in lines:
            ctx.console.print(reports.search_hit(line), soft_wrap=True)
    return EXIT_OK


def monitor_frame(ctx: Context, name: str | None) -> tuple[Any, Any]:
    """One refresh: the data (for --json) and what to draw."""
    now = time.time()
    if name is not None:
        service = ctx.client.service(name)
        return service, render.service_detail(service, now)
    overview = ctx.client.stats()
    services = all_services(ctx.client)
    data = {"overview": overview, "services": services}
    return data, reports.monitor_view(overview, services, now)


def cmd_monitor(
    ctx: Context, args: argparse.Namespace, sleep: Callable[[float], None] = time.sleep
) -> int:
    if args.interval < MIN_INTERVAL:
        raise UsageError(f"--interval must be at least {MIN_INTERVAL} seconds")
    try:
        if ctx.json:
            while True:
                data, _view = monitor_frame(ctx, args.name)
                ctx.out(render.to_json(data).replace("\n", ""))
                sleep(args.interval)
        if not ctx.console.is_terminal:  # a pipe or a file: each frame after the last
            while True:
                ctx.console.print(monitor_frame(ctx, args.name)[1])
                sleep(args.interval)
        _data, view = monitor_frame(ctx, args.name)
        with Live(view, console=ctx.console, screen=False, auto_refresh=False) as live:
            while True:
                sleep(args.interval)
                _data, view = monitor_frame(ctx, args.name)
                live.update(view, refresh=True)
    except KeyboardInterrupt:
        return EXIT_OK


def _listing(ctx: Context, args: argparse.Namespace) -> list[dict[str, Any]] | None:
    """The last events from the audit log; None when it is unavailable but -f can stream."""
    try:
        events: list[dict[str, Any]] = ctx.client.events(
            limit=args.limit, service=args.service, kind=args.kind
        )["events"]
    except ApiError as error:
        if args.follow and error.code == "STORE_UNAVAILABLE":
            ctx.err(f"{error.message}; following new events only")
            return None
        raise
    return events


def cmd_events(
    ctx: Context, args: argparse.Namespace, sleep: Callable[[float], None] = time.sleep
) -> int:
    first = _listing(ctx, args)
    if ctx.json and not args.follow:
        ctx.out(render.to_json(first))
        return EXIT_OK
    seen: set[int] = set()

    def emit(events: list[dict[str, Any]]) -> None:
        for event in reversed(events):  # oldest first
            if event["id"] in seen:
                continue
            seen.add(event["id"])
            ctx.out(_one_line(ctx, event))

    emit(first or [])
    if not args.follow:
        return EXIT_OK
    try:
        try:
            return _stream(ctx, args)
        except ApiError as error:
            if error.status != 404:
                raise
        # An agentvisor without the event stream: poll the audit log.
        since = max((event["timestamp"] for event in first or []), default=time.time())
        while True:
            sleep(FOLLOW_INTERVAL)
            newer = ctx.client.events(
                limit=PAGE, since=since, service=args.service, kind=args.kind
            )["events"]
            emit(newer)
            since = max([since, *(event["timestamp"] for event in newer)])
    except KeyboardInterrupt:
        return EXIT_OK


def _one_line(ctx: Context, event: dict[str, Any]) -> str:
    return render.to_json(event).replace("\n", "") if ctx.json else reports.event_line(event)


def _stream(ctx: Context, args: argparse.Namespace) -> int:
    """Follow the live event stream (the kinds the audit log keeps) until it ends."""
    types = args.kind or ",".join(reports.AUDITED_KINDS)
    for kind, event in ctx.client.stream_events(types=types, service=args.service):
        ctx.out(_one_line(ctx, reports.audit_view(kind, event)))
    raise Unreachable(ctx.client.server, "the event stream ended: agentvisor is stopping")


def add_commands(commands: argparse._SubParsersAction[Any]) -> None:
    stats = commands.add_parser("stats", help="system overview")
    stats.set_defaults(handler=cmd_stats)

    monitor = commands.add_parser("monitor", help="live view until Ctrl-C")
    monitor.add_argument("name", nargs="?", metavar="NAME", help="one service in detail")
    monitor.add_argument("--interval", type=float, default=2.0, metavar="SECONDS")
    monitor.set_defaults(handler=cmd_monitor)

    for alias in ("health", "health-check"):
        text = "run a health check of a service now and print it"
        health = commands.add_parser(alias, help=text if alias == "health" else "= health")
        health.add_argument("name", metavar="NAME")
        health.set_defaults(handler=cmd_health)

    logs = commands.add_parser("logs", help="stored worker output")
    actions = logs.add_subparsers(dest="logs_command", metavar="ACTION", required=True)
    search = actions.add_parser("search", help="full-text search of stored log lines")
    search.add_argument("query", metavar="QUERY", help='words (all must occur), or "a phrase"')
    search.add_argument("--service", metavar="NAME")
    search.add_argument("-n", "--limit", type=int, default=50, metavar="LINES")
    search.set_defaults(handler=cmd_logs_search)

    events = commands.add_parser("events", help="the audit log")
    events.add_argument("-f", "--follow", action="store_true", help="keep printing new events")
    events.add_argument("--service", metavar="NAME")
    events.add_argument("--kind", metavar="KIND", help="e.g. operator.action, instance.state")
    events.add_argument("-n", "--limit", type=int, default=20, metavar="EVENTS")
    events.set_defaults(handler=cmd_events)


def check_limits(args: argparse.Namespace) -> None:
    """Bounds argparse cannot express (usage errors, exit 2)."""
    limit = getattr(args, "limit", None)
    if isinstance(limit, int) and not 1 <= limit <= PAGE:
        raise UsageError(f"-n must be from 1 to {PAGE}")
    query = getattr(args, "query", None)
    if isinstance(query, str) and not query.strip():
        raise UsageError("QUERY must name at least one word to search for")
