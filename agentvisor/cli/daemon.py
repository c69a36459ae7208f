"""``agentvisor``: run the daemon, check a config, ask a running daemon to reload, serve one
agent, write a starter config (``init``).

Errors are one line on stderr; exit codes
follow agentvisorctl's: 0 ok, 1 failed or invalid, 2 usage, 3 not reachable.

Each command imports what it needs when it runs: ``run`` starts its first
worker sooner without the HTTP client, rich and agentvisorctl's modules.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from agentvisor import __version__
from agentvisor.cli.completion import add_completion_command, parse_command_line
from agentvisor.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE
from agentvisor.errors import AgentvisorError, ConfigInvalid
from agentvisor.worker.options import add_worker_arguments, options_from_args

PROG = "agentvisor"
DEFAULT_CONFIG = "agentvisor.toml"
PIDFILE_NAME = "agentvisor.pid"


def _err(line: str) -> None:
    print(f"{PROG}: {line}", file=sys.stderr, flush=True)


def cmd_run(args: argparse.Namespace) -> NoReturn:
    """Run the daemon; once it has shut down, end the process without finalizing it.

    By the time ``run`` returns every worker is gone, the state store is flushed
    and closed and the orphan guard has exited: what is left is the interpreter's
    teardown of the web stack's heap (0.15-0.25 s on a quiet machine, seconds on a
    loaded one), which nothing needs. So the streams are flushed and the process
    exits at once (``os._exit``), as a forked server's child does.
    """
    import logging

    from agentvisor.config.model import LogFormat
    from agentvisor.daemon import run  # the composition root; imported only to run it

    code = run(args.config, LogFormat(args.log_format) if args.log_format else None)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass  # a closed or broken pipe: nothing more to say on it
    os._exit(code)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def cmd_check(args: argparse.Namespace) -> int:
    if args.against_daemon:
        return _api_errors_reported(lambda: _check_against_daemon(args.config))
    from agentvisor.cli import render
    from agentvisor.config.load import environment_use_of, load_config
    from agentvisor.supervise.agentfiles import check_agent_files
    from agentvisor.supervise.service import port_range_warning

    environment = render.environment_line(environment_use_of(args.config).to_dict(), "this shell's")
    hint = "the running agentvisor reads its own: agentvisor check --against-daemon"
    try:
        config = load_config(args.config)
        issues = check_agent_files(config, shown_as=args.config)
        if issues:
            raise ConfigInvalid(issues)
    except ConfigInvalid as error:
        for issue in error.issues:
            print(str(issue))
        if environment is not None:
            _err(f"{environment} ({hint})")
        return EXIT_FAILED
    except OSError as error:
        _err(f"cannot read {args.config}: {error.strerror or error}")
        return EXIT_FAILED
    agents, routes = len(config.agents), len(config.routes)
    print(f"{args.config}: ok ({_plural(agents, 'agent')}, {_plural(routes, 'route')})")
    warning = port_range_warning(config)
    if warning is not None:
        print(f"warning: {warning}")
    if environment is not None:
        print(f"{environment} ({hint})")
    return EXIT_OK


def _check_against_daemon(config_path: str) -> int:
    """Ask the running agentvisor to validate its config file as a reload would, with its
    own environment, and print the plan; nothing changes."""
    from agentvisor.cli import render
    from agentvisor.cli.ctl import locate_admin, unreachable_message
    from agentvisor.client import AgentvisorClient, ApiError, Unreachable

    address = locate_admin(config_path)
    try:
        with AgentvisorClient(address.server, token=address.token, source="cli") as client:
            info = client.info()
            running = str(info.get("config_path", ""))
            if os.path.realpath(running) != os.path.realpath(config_path):
                _err(
                    f"the agentvisor at {address.server} runs {running}, not {config_path}; "
                    f"it can check only its own file (agentvisor check -c {running} "
                    "--against-daemon)"
                )
                return EXIT_FAILED
            whose = f"the running agentvisor's (pid {info.get('pid', '?')})"
            try:
                data = client.preview_reload()
            except ApiError as error:
                if error.code != "CONFIG_INVALID":
                    raise
                for line in error.details.get("errors", []) or [error.message]:
                    print(str(line))
                _err(f"invalid with {whose} environment: a reload would be rejected")
                return EXIT_FAILED
    except Unreachable as error:
        _err(unreachable_message(address.server, error))
        return EXIT_UNREACHABLE
    print(f"{running}: ok with {whose} environment")
    for line in render.reload_lines(data):
        print(line)
    environment = render.environment_line(data.get("environment", {}), whose)
    if environment is not None:
        print(environment)
    return EXIT_OK


def _api_errors_reported(command: Callable[[], int]) -> int:
    """Run a command that talks to the admin API; an error it answers is one line, exit 1."""
    from agentvisor.client import ApiError

    try:
        return command()
    except ApiError as error:
        _err(error.message)
        return EXIT_FAILED


def cmd_reload(args: argparse.Namespace) -> int:
    return _api_errors_reported(lambda: _reload(args.config))


def _reload(config_path: str) -> int:
    """Reload over the admin socket; without one, SIGHUP the pid in the pidfile."""
    from rich.console import Console

    from agentvisor.cli.ctl import Context, locate_admin, report_reload, unreachable_message
    from agentvisor.client import AgentvisorClient, Unreachable
    from agentvisor.pidfile import read_pid

    address = locate_admin(config_path)
    try:
        with AgentvisorClient(address.server, token=address.token, source="cli") as client:
            return report_reload(Context(client, Console(), json=False, prog=PROG), client.reload)
    except Unreachable as error:
        unreachable = error
    pidfile = os.path.join(address.state_dir, PIDFILE_NAME)
    pid = read_pid(pidfile)
    if pid is None:
        _err(unreachable_message(address.server, unreachable))
        return EXIT_UNREACHABLE
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        _err(f"cannot reach agentvisor at {address.server}, and pid {pid} of {pidfile} is gone")
        return EXIT_UNREACHABLE
    except PermissionError:
        _err(f"not allowed to signal agentvisor (pid {pid}); run as its user")
        return EXIT_FAILED
    print(f"sent SIGHUP to agentvisor (pid {pid}); its log shows the result of the reload")
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve one agent file, as ``python -m agentvisor.worker`` does under the supervisor."""
    from agentvisor.worker.serve import run as run_worker  # Hypercorn: imported only to serve

    return run_worker(options_from_args(args, os.environ, os.getcwd()))


def cmd_init(args: argparse.Namespace) -> int:
    """Write agentvisor.toml and agents/assistant.py into DIR; refuse if either exists."""
    from agentvisor.cli.scaffold import write_starter

    for path in write_starter(args.directory):
        print(f"wrote {path}")
    here = os.path.abspath(args.directory) == os.getcwd()
    where = "" if here else f"cd {args.directory} && "
    print(f"next: {where}agentvisor run, then ws://127.0.0.1:9090/ws?service=assistant")
    return EXIT_OK


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Supervise, route and operate AI-agent services.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, handler, text in (
        ("run", cmd_run, "run in the foreground until SIGTERM/SIGINT; SIGHUP reloads"),
        ("check", cmd_check, "validate a config file and print every problem"),
        ("reload", cmd_reload, "ask the running agentvisor to reload its config"),
    ):
        sub = commands.add_parser(name, help=text, description=text)
        sub.add_argument(
            "-c",
            "--config",
            default=DEFAULT_CONFIG,
            metavar="FILE",
            help=f"config file (default: {DEFAULT_CONFIG})",
        )
        sub.set_defaults(handler=handler)
        if name == "check":
            sub.add_argument(
                "--against-daemon",
                action="store_true",
                help="let the running agentvisor validate its config file with its own "
                "environment and say what a reload would do (changes nothing)",
            )
        if name == "run":
            sub.add_argument(
                "--log-format",
                choices=("text", "json"),
                help="log lines as text or one JSON object each (default: [supervisor] log_format)",
            )
    text = "serve one agent file over WebSocket (what agentvisor runs for agent = ...)"
    serve = commands.add_parser("serve", help=text, description=text)
    add_worker_arguments(serve)
    serve.set_defaults(handler=cmd_serve)
    text = "write a starter agentvisor.toml and an example agent (never overwrites)"
    init = commands.add_parser("init", help=text, description=text)
    init.add_argument(
        "directory", nargs="?", default=".", metavar="DIR", help="where (default: here)"
    )
    init.set_defaults(handler=cmd_init)
    add_completion_command(commands, PROG)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_command_line(build_parser(), argv, PROG)
    if args is None:
        return EXIT_OK
    try:
        code: int = args.handler(args)
    except AgentvisorError as error:
        _err(error.message)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    return code
