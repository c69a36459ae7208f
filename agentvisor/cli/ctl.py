"""``agentvisorctl``: the control client of a running agentvisor.

It talks to the admin API through ``agentvisor.client``: by default over the
admin unix socket named in the config file, else ``-s URL-or-socket`` /
``AGENTVISOR_URL``. Exit codes: 0 ok, 1 the operation failed, 2 usage error,
3 cannot reach agentvisor, or (``status``) a service shown is not running.
Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tomllib
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import attrs
from rich.console import Console

from agentvisor import __version__
from agentvisor.cli import manage, observe, render, traffic
from agentvisor.cli.cluster_view import cluster_view
from agentvisor.cli.completion import (
    NAMES_TIMEOUT,
    add_completion_command,
    complete_service_names,
    parse_command_line,
)
from agentvisor.cli.context import PAGE, PROG, UsageError, all_services
from agentvisor.cli.context import Context as Context
from agentvisor.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE
from agentvisor.client import AgentvisorClient, ApiError, Unreachable

DEFAULT_CONFIGS = ("agentvisor.toml", "agentvisor.toml.example")
DEFAULT_SOCKET = ".agentvisor/admin.sock"
DEFAULT_STATE_DIR = ".agentvisor"
#: Seconds each long-poll of ``tail -f`` may wait on the server for new lines.
FOLLOW_WAIT = 25.0
PIPED_WIDTH = 200
#: ``status``: some service shown is not running (supervisorctl's and LSB's 3).
EXIT_NOT_RUNNING = 3
#: Commands whose ``NAME`` is a service that exists (shell completion offers those).
SERVICE_COMMANDS = (
    "status", "start", "stop", "restart", "show", "tail", "unregister", "remove", "scale",
    "monitor", "health", "health-check",
)  # fmt: skip


@attrs.frozen
class AdminAddress:
    """Where the admin API of the agentvisor described by a config file listens."""

    server: str  # http(s)://host:port, or a unix socket path
    token: str | None
    state_dir: str  # absolute


def default_config_path() -> str | None:
    for candidate in DEFAULT_CONFIGS:
        if os.path.isfile(candidate):
            return candidate
    return None


def _display_path(path: str) -> str:
    relative = os.path.relpath(path)
    return relative if not relative.startswith("..") else path


def _tcp_url(bind: str) -> str:
    host, _, port = bind.rpartition(":")
    host = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]", "": "127.0.0.1"}.get(host, host)
    return f"http://{host}:{port}"


def _table(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def locate_admin(config_path: str | None) -> AdminAddress:
    """Read ``[admin] bind`` and ``state_dir`` from the file, without validating the rest.

    The file may be invalid (that is what ``reload`` is about to report), so it
    is only parsed as TOML; anything unreadable falls back to the defaults,
    relative to the file's directory.
    """
    base_dir = os.path.dirname(os.path.abspath(config_path)) if config_path else os.getcwd()
    data: dict[str, Any] = {}
    if config_path is not None:
        try:
            with open(config_path, "rb") as file:
                data = tomllib.load(file)
        except (OSError, tomllib.TOMLDecodeError):
            data = {}
    admin = _table(data, "admin")
    supervisor = _table(data, "supervisor")
    binds = admin.get("bind", ["127.0.0.1:8080", "unix:" + DEFAULT_SOCKET])
    binds = [b for b in binds if isinstance(b, str)] if isinstance(binds, list) else []
    raw_token = admin.get("token")
    token = raw_token if isinstance(raw_token, str) and "${" not in raw_token else None
    state_dir = supervisor.get("state_dir", DEFAULT_STATE_DIR)
    state_dir = state_dir if isinstance(state_dir, str) else DEFAULT_STATE_DIR
    unix = [b.removeprefix("unix:") for b in binds if b.startswith("unix:")]
    tcp = [b for b in binds if not b.startswith("unix:")]
    if unix:
        server = _display_path(os.path.join(base_dir, unix[0]))
    elif tcp:
        server = _tcp_url(tcp[0])
    else:
        server = _display_path(os.path.join(base_dir, DEFAULT_SOCKET))
    return AdminAddress(server, token, os.path.join(base_dir, state_dir))


# -- commands ------------------------------------------------------------------------


def cmd_status(ctx: Context, args: argparse.Namespace) -> int:
    if args.cluster:
        return cluster_status(ctx)
    failed = False
    if args.names:
        services = []
        for name in args.names:
            try:
                services.append(ctx.client.service(name))
            except ApiError as error:
                ctx.err(error.message)
                failed = True
    else:
        services = all_services(ctx.client)
    if ctx.json:
        ctx.out(render.to_json(services))
    elif services:
        ctx.console.print(render.status_view(services, time.time()))
    elif not failed:
        ctx.out("no services configured")
    if failed:
        return EXIT_FAILED
    # As supervisorctl (and LSB's status action): 3 when anything shown is not running.
    return EXIT_NOT_RUNNING if any(s["state"] != "running" for s in services) else EXIT_OK


def cluster_status(ctx: Context) -> int:
    """``status --cluster``: 3 when a node listed is not up or Redis is unreachable."""
    try:
        listing = ctx.client.cluster_nodes()
    except ApiError as error:
        ctx.err(error.message)
        return EXIT_FAILED
    if ctx.json:
        ctx.out(render.to_json(listing))
    else:
        ctx.console.print(cluster_view(listing))
    nodes = listing.get("nodes", [])
    healthy = listing.get("redis", {}).get("reachable") and all(
        node.get("state") == "up" for node in nodes
    )
    return EXIT_OK if healthy else EXIT_NOT_RUNNING


def cmd_operate(ctx: Context, args: argparse.Namespace) -> int:
    action: str = args.command
    names: list[str] = args.names
    if names == ["all"]:
        names = [service["name"] for service in all_services(ctx.client)]
    elif "all" in names:
        raise UsageError("'all' cannot be combined with service names")
    failed = False
    results = []
    for name in names:
        try:
            if action == "restart":
                data = ctx.client.restart(name, force=args.force)
            elif action == "start":
                data = ctx.client.start(name)
            else:
                data = ctx.client.stop(name)
        except ApiError as error:
            ctx.err(error.message)
            failed = True
            continue
        results.append(data)
        status = data["service"]["status"]
        if action != "stop" and data["settled"] and status in ("fatal", "exited"):
            failed = True
        if not ctx.json:
            ctx.out(render.operation_line(data))
    if ctx.json:
        ctx.out(render.to_json(results))
    return EXIT_FAILED if failed else EXIT_OK


def report_reload(ctx: Context, call: Callable[[], Any]) -> int:
    """Run a reload and print its outcome, or every validation error (exit 1)."""
    try:
        data = call()
    except ApiError as error:
        if error.code != "CONFIG_INVALID":
            raise
        errors = [str(line) for line in error.details.get("errors", [])] or [error.message]
        ctx.err(f"reload rejected, the config is invalid ({len(errors)} problem(s)):")
        for line in errors:
            print(f"  {line}", file=sys.stderr)
        return EXIT_FAILED
    if ctx.json:
        ctx.out(render.to_json(data))
    else:
        for line in render.reload_lines(data):
            ctx.out(line)
    # Applied, but a rolling restart stopped at a replica that did not come back.
    return EXIT_FAILED if data.get("failed") else EXIT_OK


def cmd_reload(ctx: Context, _args: argparse.Namespace) -> int:
    return report_reload(ctx, ctx.client.reload)


def cmd_show(ctx: Context, args: argparse.Namespace) -> int:
    data = ctx.client.service(args.name)
    if ctx.json:
        ctx.out(render.to_json(data))
    else:
        ctx.console.print(render.service_detail(data, time.time()))
    return EXIT_OK


def cmd_tail(ctx: Context, args: argparse.Namespace) -> int:
    stream = "stderr" if args.stderr else "stdout" if args.stdout else None
    service = ctx.client.service(args.name)
    show_instance = args.instance is None and service["replicas"]["desired"] > 1
    query = {"stream": stream, "instance": args.instance}

    def emit(lines: list[dict[str, Any]]) -> None:
        for line in lines:
            if ctx.json:
                print(render.to_json(line).replace("\n", ""), flush=True)
            else:
                print(render.log_line(line, show_instance=show_instance), flush=True)

    try:  # Ctrl-C is how a follow ends, whenever it comes
        data = ctx.client.logs(args.name, limit=args.lines, **query)
        emit(data["lines"])
        cursor = data["next_since"]
        while args.follow:
            data = ctx.client.logs(args.name, since=cursor, limit=PAGE, wait=FOLLOW_WAIT, **query)
            emit(data["lines"])
            cursor = data["next_since"]
    except KeyboardInterrupt:
        if not args.follow:
            raise
    return EXIT_OK


# -- parsing and dispatch --------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Control a running agentvisor.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument(
        "-s",
        "--server",
        default=os.environ.get("AGENTVISOR_URL") or None,
        help="admin API URL (http://host:port) or unix socket path [env AGENTVISOR_URL]",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("AGENTVISOR_TOKEN") or None,
        help="bearer token for a TCP admin API [env AGENTVISOR_TOKEN]",
    )
    parser.add_argument(
        "-c",
        "--config",
        help="config file naming the admin socket (default: ./agentvisor.toml, "
        "else ./agentvisor.toml.example)",
    )
    parser.add_argument("--json", action="store_true", help="print the API's data as JSON")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    status = commands.add_parser("status", help="state of every service, or of NAME…")
    status.add_argument("names", nargs="*", metavar="NAME")
    status.add_argument(
        "--cluster", action="store_true", help="every node of the cluster (needs [cluster])"
    )
    status.set_defaults(handler=cmd_status)

    for action, text in (("start", "start"), ("stop", "stop"), ("restart", "restart (rolling)")):
        sub = commands.add_parser(action, help=f"{text} services ('all' for every one)")
        sub.add_argument("names", nargs="+", metavar="NAME")
        if action == "restart":
            sub.add_argument("--force", action="store_true", help="skip draining")
        sub.set_defaults(handler=cmd_operate)

    reload = commands.add_parser("reload", help="re-read the config file and apply it")
    reload.set_defaults(handler=cmd_reload)

    show = commands.add_parser("show", help="full detail of one service")
    show.add_argument("name", metavar="NAME")
    show.set_defaults(handler=cmd_show)

    tail = commands.add_parser("tail", help="worker output of a service")
    tail.add_argument("name", metavar="NAME")
    tail.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    which = tail.add_mutually_exclusive_group()
    which.add_argument("--stderr", action="store_true", help="stderr only")
    which.add_argument("--stdout", action="store_true", help="stdout only")
    tail.add_argument("--instance", type=int, metavar="N", help="only replica N")
    tail.add_argument("-n", "--lines", type=int, default=20, metavar="LINES")
    tail.set_defaults(handler=cmd_tail)

    routes = manage.add_commands(commands)
    observe.add_commands(commands)
    traffic.add_commands(commands, routes)
    add_completion_command(commands, PROG)
    complete_service_names(parser, service_names, SERVICE_COMMANDS)
    for command in commands.choices.values():
        # ``agentvisorctl status --json`` as well as ``agentvisorctl --json status``;
        # SUPPRESS keeps the subcommand from resetting a --json given before it.
        command.add_argument(
            "--json", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
    return parser


def resolve_server(args: argparse.Namespace) -> tuple[str, str | None]:
    """The server to talk to and the token to send."""
    if args.server:
        return args.server, args.token
    if args.config is not None and not os.path.isfile(args.config):
        raise UsageError(f"config file {args.config} not found")
    address = locate_admin(args.config if args.config is not None else default_config_path())
    return address.server, args.token or address.token


def service_names(args: argparse.Namespace) -> list[str]:
    """The services of the agentvisor ``args`` point at, for a shell's Tab; [] if unreachable."""
    try:
        server, token = resolve_server(args)
        with AgentvisorClient(server, token=token, timeout=NAMES_TIMEOUT, source="cli") as client:
            names = [service["name"] for service in all_services(client)]
    except (UsageError, Unreachable, ApiError, OSError, ValueError):
        return []
    return [*names, "all"] if args.command in ("start", "stop", "restart") else names


def unreachable_message(server: str, error: Unreachable) -> str:
    if not error.maybe_down:
        return f"cannot reach agentvisor at {server} ({error.reason})"
    why = f"{error.reason}; " if error.reason else ""
    hint = "is it running? start it with 'agentvisor run'"
    return f"cannot reach agentvisor at {server} ({why}{hint})"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_command_line(build_parser(), argv, PROG)
    if args is None:
        return EXIT_OK
    # Piped output (grep, logs) is not cut to 80 columns; a terminal keeps its width.
    piped = not sys.stdout.isatty() and not os.environ.get("COLUMNS", "").strip().isdigit()
    console = Console(highlight=False, width=PIPED_WIDTH if piped else None)
    try:
        server, token = resolve_server(args)
        if args.command == "tail" and args.lines is not None and not 1 <= args.lines <= PAGE:
            raise UsageError(f"-n must be from 1 to {PAGE}")
        observe.check_limits(args)
        with AgentvisorClient(server, token=token, source="cli") as client:
            context = Context(client, console, args.json)
            handler: Callable[[Context, argparse.Namespace], int] = args.handler
            return handler(context, args)
    except UsageError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return EXIT_USAGE
    except Unreachable as error:
        print(f"{PROG}: {unreachable_message(error.target, error)}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except ApiError as error:
        print(f"{PROG}: {error.message}", file=sys.stderr)
        problems = error.details.get("errors") if error.code == "CONFIG_INVALID" else None
        if isinstance(problems, list) and len(problems) > 1:
            for problem in problems:  # the edit was refused: say everything that is wrong
                print(f"  {problem}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`); say nothing, and keep Python quiet at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
