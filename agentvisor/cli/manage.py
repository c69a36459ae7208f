"""``agentvisorctl`` commands that change agentvisor.toml: register, unregister, scale, route.

Each is one API call; the server edits the file (keeping its comments),
applies it, and answers with what happened, which is printed in one line (or
as JSON with ``--json``). Paths of agent files are sent absolute, since the
daemon does not share this shell's working directory.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from agentvisor.cli import render, reports
from agentvisor.cli.context import EXIT_FAILED, EXIT_OK, UsageError
from agentvisor.envelope import ApiError

if TYPE_CHECKING:
    from agentvisor.cli.context import Context

#: ``--condition`` operators, longest first so ``!=`` is not read as ``=``.
CONDITION_TOKENS = (
    ("!=", "not_equals"),
    ("~=", "contains"),
    ("^=", "starts_with"),
    ("$=", "ends_with"),
    ("=", "equals"),
)


def parse_condition(text: str) -> dict[str, Any]:
    """``header.x-user-tier=vip`` → a condition object of the API.

    ``FIELD=VALUE`` equals, ``FIELD!=VALUE`` not equals, ``FIELD~=VALUE``
    contains, ``FIELD^=VALUE`` starts with, ``FIELD$=VALUE`` ends with, and
    ``FIELD`` alone: the field exists.
    """
    positions = [(text.find(token), token, op) for token, op in CONDITION_TOKENS]
    found = [(at, token, op) for at, token, op in positions if at > 0]
    if not found:
        if not text.strip() or "=" in text:
            raise UsageError(f"--condition {text!r} is not FIELD=VALUE (or FIELD alone)")
        return {"field": text.strip(), "operator": "exists"}
    at, token, op = min(found, key=lambda item: (item[0], -len(item[1])))
    field, value = text[:at].strip(), text[at + len(token) :]
    if not field:
        raise UsageError(f"--condition {text!r} names no field")
    return {"field": field, "operator": op, "value": value}


def _tags(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [tag.strip() for tag in text.split(",") if tag.strip()]


def _environment(pairs: list[str] | None) -> dict[str, str] | None:
    if not pairs:
        return None
    environment = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--env {pair!r} is not NAME=VALUE")
        environment[key] = value
    return environment


#: Fields of the API's register body, as the operator typed them on the command line.
REGISTER_ARGS = {
    "name": "NAME",
    "agent_factory_path": "FILE",
    "command": "--command",
    "description": "--description",
    "tags": "--tags",
    "port": "--port",
    "replicas": "--replicas",
    "environment": "--env",
}


def in_cli_terms(error: ApiError, args: Mapping[str, str]) -> ApiError:
    """``error`` with the API's name of the field it is about replaced by the argument."""
    field = error.details.get("field")
    shown = args.get(field) if isinstance(field, str) else None
    if shown is None:
        return error
    message = error.message.replace(f"Field '{field}'", shown, 1).replace(f"'{field}'", shown)
    return ApiError(error.code, message, error.details, error.status)


def register_body(args: argparse.Namespace) -> dict[str, Any]:
    """The ``POST /services`` fields of a ``register`` command line."""
    if (args.file is None) == (args.command_line is None):
        raise UsageError("give an agent FILE or --command (exactly one of them)")
    return {
        "agent_factory_path": None if args.file is None else os.path.abspath(args.file),
        "command": args.command_line,
        "description": args.description,
        "tags": _tags(args.tags),
        "port": args.port,
        "replicas": args.replicas,
        "environment": _environment(args.env),
        "auto_start": args.auto_start,
        "config": {
            key: value
            for key, value in (
                ("max_sessions", args.max_sessions),
                ("session_timeout", args.session_timeout),
                ("auto_restart", args.auto_restart),
            )
            if value is not None
        }
        or None,
    }


def cmd_register(ctx: Context, args: argparse.Namespace) -> int:
    try:
        data = ctx.client.register(args.name, **register_body(args))
    except ApiError as error:
        raise in_cli_terms(error, REGISTER_ARGS) from None
    ctx.out(render.to_json(data) if ctx.json else reports.registered_line(data))
    return EXIT_OK


def cmd_unregister(ctx: Context, args: argparse.Namespace) -> int:
    data = ctx.client.unregister(args.name)
    ctx.out(render.to_json(data) if ctx.json else reports.unregistered_line(data))
    return EXIT_OK


def cmd_scale(ctx: Context, args: argparse.Namespace) -> int:
    if args.replicas < 0:
        raise UsageError("N must be 0 or more replicas")
    try:
        data = ctx.client.scale(args.name, args.replicas)
    except ApiError as error:
        raise in_cli_terms(error, {"replicas": "N"}) from None
    ctx.out(render.to_json(data) if ctx.json else reports.scaled_line(data))
    return EXIT_FAILED if data.get("reload", {}).get("failed") else EXIT_OK


def cmd_route_list(ctx: Context, _args: argparse.Namespace) -> int:
    rules: list[dict[str, Any]] = []
    while True:
        page = ctx.client.rules(limit=1000, offset=len(rules))
        rules.extend(page["rules"])
        if not page["page"]["has_next"]:
            break
    if ctx.json:
        ctx.out(render.to_json(rules))
    elif rules:
        ctx.console.print(reports.rules_table(rules))
    else:
        ctx.out("no routing rules")
    return EXIT_OK


def route_body(args: argparse.Namespace) -> dict[str, Any]:
    """The ``POST /routing/rules`` body of a ``route create`` command line."""
    return {
        key: value
        for key, value in {
            "name": args.name,
            "priority": args.priority,
            "conditions": [parse_condition(text) for text in args.condition or []],
            "target_tags": args.target_tag,
            "target_agents": args.target_agent,
            "target_strategy": args.strategy,
            "action": args.action,
            "description": args.description,
            "enabled": False if args.disabled else None,
        }.items()
        if value is not None
    }


def cmd_route_create(ctx: Context, args: argparse.Namespace) -> int:
    data = ctx.client.create_rule(route_body(args))
    ctx.out(render.to_json(data) if ctx.json else reports.rule_line("created", data["rule"]))
    return EXIT_OK


def cmd_route_delete(ctx: Context, args: argparse.Namespace) -> int:
    data = ctx.client.delete_rule(args.name)
    ctx.out(render.to_json(data) if ctx.json else f"deleted routing rule {args.name}")
    return EXIT_OK


def add_commands(commands: argparse._SubParsersAction[Any]) -> argparse._SubParsersAction[Any]:
    """Add register, unregister/remove, scale and route; returns route's subcommands
    (``route test`` is the router's, added by its own module)."""
    register = commands.add_parser("register", help="add a service to agentvisor.toml and run it")
    register.add_argument("name", metavar="NAME")
    register.add_argument("file", nargs="?", metavar="FILE", help="the agent file")
    register.add_argument(
        "--command",
        dest="command_line",
        metavar="CMD",
        help="a program serving WebSocket on {port}, instead of an agent FILE",
    )
    register.add_argument("--description")
    register.add_argument("--tags", metavar="a,b", help="comma-separated tags")
    register.add_argument("--port", type=int, help="fixed port of replica 0")
    register.add_argument("--replicas", type=int)
    register.add_argument("--max-sessions", type=int, metavar="N")
    register.add_argument("--session-timeout", type=float, metavar="SECONDS")
    register.add_argument(
        "--auto-restart",
        action=argparse.BooleanOptionalAction,
        help="restart it when it fails (default: on failure)",
    )
    register.add_argument(
        "--auto-start",
        action=argparse.BooleanOptionalAction,
        help="start it now and whenever agentvisor starts (default: yes)",
    )
    register.add_argument(
        "--env", action="append", metavar="NAME=VALUE", help="environment (repeatable)"
    )
    register.set_defaults(handler=cmd_register)

    for alias in ("unregister", "remove"):
        text = "stop a service and remove it from agentvisor.toml"
        sub = commands.add_parser(alias, help=text if alias == "unregister" else "= unregister")
        sub.add_argument("name", metavar="NAME")
        sub.set_defaults(handler=cmd_unregister)

    scale = commands.add_parser("scale", help="set the number of replicas (kept in the file)")
    scale.add_argument("name", metavar="NAME")
    scale.add_argument("replicas", type=int, metavar="N")
    scale.set_defaults(handler=cmd_scale)

    route = commands.add_parser("route", help="routing rules ([[routes]] of agentvisor.toml)")
    routes: argparse._SubParsersAction[Any] = route.add_subparsers(
        dest="route_command", metavar="ACTION", required=True
    )
    listing = routes.add_parser("list", help="the rules, in the order they are tried")
    listing.set_defaults(handler=cmd_route_list)
    create = routes.add_parser("create", help="add a rule")
    create.add_argument("name", metavar="NAME")
    create.add_argument(
        "--condition",
        action="append",
        metavar="FIELD=VALUE",
        help="all must hold; also != ~= (contains) ^= $= or FIELD alone (exists)",
    )
    create.add_argument("--target-tag", action="append", metavar="TAG")
    create.add_argument("--target-agent", action="append", metavar="NAME")
    create.add_argument("--strategy", metavar="S", help="e.g. least_connections, ip_hash")
    create.add_argument("--priority", type=int, help="higher is tried first (default 0)")
    create.add_argument("--action", choices=["route", "reject"])
    create.add_argument("--description")
    create.add_argument("--disabled", action="store_true", help="create it switched off")
    create.set_defaults(handler=cmd_route_create)
    delete = routes.add_parser("delete", help="remove a rule")
    delete.add_argument("name", metavar="NAME")
    delete.set_defaults(handler=cmd_route_delete)
    return routes
