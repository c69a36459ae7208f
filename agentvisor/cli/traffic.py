"""``agentvisorctl connections | disconnect | route test``: the router's live traffic.

``route test`` joins the ``route`` group of ``manage`` (list, create,
delete): it asks the router where a client with these headers, query and
address would go, without connecting anything.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from agentvisor.cli import render
from agentvisor.cli.context import EXIT_FAILED, EXIT_OK, PAGE, Context, UsageError


def _pairs(items: list[str] | None, what: str) -> dict[str, Any]:
    """``k=v`` arguments; a repeated key (``--query tag=a --query tag=b``) becomes a list."""
    result: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{what} must look like NAME=VALUE, got {item!r}")
        if key in result:
            previous = result[key]
            result[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            result[key] = value
    return result


def cmd_connections(ctx: Context, args: argparse.Namespace) -> int:
    connections: list[dict[str, Any]] = []
    while True:
        page = ctx.client.connections(
            service=args.service, status=args.status, limit=PAGE, offset=len(connections)
        )
        connections.extend(page["connections"])
        if not page["page"]["has_next"]:
            break
    if ctx.json:
        ctx.out(render.to_json(connections))
    elif connections:
        ctx.console.print(render.connections_table(connections, time.time()))
    else:
        ctx.out("no connections" + (f" to {args.service}" if args.service else ""))
    return EXIT_OK


def cmd_disconnect(ctx: Context, args: argparse.Namespace) -> int:
    data = ctx.client.disconnect(args.id, reason=args.reason, notify_client=not args.no_notify)
    ctx.out(render.to_json(data) if ctx.json else render.disconnected_line(data))
    return EXIT_OK


def cmd_route_test(ctx: Context, args: argparse.Namespace) -> int:
    headers = {k: str(v) for k, v in _pairs(args.header, "--header").items()}
    query = _pairs(args.query, "--query")
    data = ctx.client.route_test(ip=args.ip, path=args.path, headers=headers, query=query)
    if ctx.json:
        ctx.out(render.to_json(data))
    else:
        for line in render.route_test_lines(data):
            ctx.out(line)
    return EXIT_OK if data.get("instance") else EXIT_FAILED


def add_commands(
    commands: argparse._SubParsersAction[Any], routes: argparse._SubParsersAction[Any]
) -> None:
    connections = commands.add_parser("connections", help="clients connected through the router")
    connections.add_argument("--service", metavar="NAME", help="only those routed to NAME")
    connections.add_argument(
        "--status", choices=["connecting", "active", "failing_over", "closing"]
    )
    connections.set_defaults(handler=cmd_connections)

    disconnect = commands.add_parser("disconnect", help="close a client's connection (1001)")
    disconnect.add_argument("id", metavar="ID", help="connection id (see 'connections')")
    disconnect.add_argument("--reason", help="told to the client and logged")
    disconnect.add_argument(
        "--no-notify", action="store_true", help="no management_notification before the close"
    )
    disconnect.set_defaults(handler=cmd_disconnect)

    test = routes.add_parser("test", help="where a client would be routed (dry run)")
    test.add_argument("--header", action="append", metavar="NAME=VALUE")
    test.add_argument("--query", action="append", metavar="NAME=VALUE")
    test.add_argument("--ip", default="127.0.0.1", metavar="ADDRESS", help="client address")
    test.add_argument("--path", default="/ws", help="request path (default /ws)")
    test.set_defaults(handler=cmd_route_test)
