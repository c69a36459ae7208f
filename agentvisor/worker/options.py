"""The worker's command line, shared by ``python -m agentvisor.worker`` and ``agentvisor serve``.

The supervisor runs ``python -m agentvisor.worker AGENT_FILE --host H --port P
--runtime R --max-sessions N --session-timeout S --on-busy B --ws-path /``
with ``AGENTVISOR_SESSION_STORE`` in the environment; ``agentvisor serve`` takes the
same arguments (and ``--session-store``) for running one agent by hand.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping

from attrs import field, frozen

from agentvisor.config.model import OnBusy, Runtime
from agentvisor.config.redis_target import is_redis_url
from agentvisor.worker.limits import DEFAULT_MAX_MESSAGE_BYTES

SESSION_STORE_ENV = "AGENTVISOR_SESSION_STORE"
#: With a Redis session store: the agent's key namespace, and this node's name.
SESSION_NAMESPACE_ENV = "AGENTVISOR_SESSION_NAMESPACE"
NODE_ENV = "AGENTVISOR_NODE"
DEFAULT_PORT = 8081


@frozen
class WorkerOptions:
    agent_file: str
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT  # 0: any free port (printed once serving)
    runtime: Runtime = field(default=Runtime.ASYNCIO, converter=Runtime)
    max_sessions: int = 100
    session_timeout: float = 1800.0
    on_busy: OnBusy = field(default=OnBusy.QUEUE, converter=OnBusy)
    ws_path: str = "/"
    session_store: str = ""  # SQLite file shared by the replicas of the agent, or Redis URLs
    session_namespace: str = ""  # Redis: the prefix of the agent's session keys
    node: str = ""  # Redis: this node's name, in the worker's turns (NODE/PID)
    shutdown_timeout: float = 8.0  # how long running turns may finish on SIGTERM
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    replay_limit: int = 500


def default_session_store(agent_file: str, env: Mapping[str, str], cwd: str) -> str:
    """``$AGENTVISOR_SESSION_STORE``, else ``.agentvisor/sessions/<file stem>.sqlite3`` in cwd."""
    configured = env.get(SESSION_STORE_ENV)
    if configured:
        return configured
    stem = os.path.splitext(os.path.basename(agent_file))[0] or "agent"
    return os.path.join(cwd, ".agentvisor", "sessions", f"{stem}.sqlite3")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number (0-65535), got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def _ws_path(text: str) -> str:
    if not text.startswith("/"):
        raise argparse.ArgumentTypeError(f"must start with '/', got {text!r}")
    return text


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("agent_file", metavar="AGENT_FILE", help="Python file defining the agent")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument(
        "--port", type=_port, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT}; 0: any)"
    )
    parser.add_argument(
        "--runtime",
        type=Runtime,
        choices=list(Runtime),
        default=Runtime.ASYNCIO,
        help="event loop the agent runs on (default: asyncio)",
    )
    parser.add_argument("--max-sessions", type=_positive_int, default=100, metavar="N")
    parser.add_argument(
        "--session-timeout",
        type=_positive_float,
        default=1800.0,
        metavar="SECONDS",
        help="close sessions idle this long (default: 1800)",
    )
    parser.add_argument(
        "--on-busy",
        type=OnBusy,
        choices=list(OnBusy),
        default=OnBusy.QUEUE,
        help="what a message does while its session's turn runs (default: queue)",
    )
    parser.add_argument("--ws-path", type=_ws_path, default="/", metavar="PATH")
    parser.add_argument(
        "--session-store",
        default=None,
        metavar="PATH",
        help=f"SQLite session store, or redis:// URLs (default: ${SESSION_STORE_ENV}, "
        "else .agentvisor/sessions/<agent file stem>.sqlite3)",
    )
    parser.add_argument(
        "--shutdown-timeout",
        type=_positive_float,
        default=8.0,
        metavar="SECONDS",
        help="on SIGTERM, how long running turns may finish before being cancelled (default: 8)",
    )
    parser.add_argument(
        "--max-message-bytes", type=_positive_int, default=DEFAULT_MAX_MESSAGE_BYTES, metavar="N"
    )


def options_from_args(args: argparse.Namespace, env: Mapping[str, str], cwd: str) -> WorkerOptions:
    store = args.session_store or default_session_store(args.agent_file, env, cwd)
    redis = is_redis_url(store)
    stem = os.path.splitext(os.path.basename(args.agent_file))[0] or "agent"
    return WorkerOptions(
        agent_file=args.agent_file,
        host=args.host,
        port=args.port,
        runtime=args.runtime,
        max_sessions=args.max_sessions,
        session_timeout=args.session_timeout,
        on_busy=args.on_busy,
        ws_path=args.ws_path,
        session_store=store if redis else os.path.abspath(store),
        session_namespace=env.get(SESSION_NAMESPACE_ENV) or f"agentvisor:sessions:{stem}",
        node=env.get(NODE_ENV, ""),
        shutdown_timeout=args.shutdown_timeout,
        max_message_bytes=args.max_message_bytes,
    )
