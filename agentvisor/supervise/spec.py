"""What an instance is started with: argv, environment, directory, user.

A ``command =`` worker runs its own program with ``{port}``, ``{host}``,
``{name}`` and ``{replica}`` substituted in each argument. An ``agent =``
worker runs agentvisor's worker runtime (``python -m agentvisor.worker``) on
the agent file, with the agent's session settings as arguments.

A command whose program is ``python`` or ``python3`` runs on agentvisor's own
interpreter (``sys.executable``), not on whatever
``PATH`` finds first: the example's ``python3 examples/ws_echo_server.py``
then has the libraries agentvisor was installed with, under a plain shell and
under systemd alike. A path (``/usr/bin/python3``) or a versioned name (``python3.12``) is
left as written.
"""

from __future__ import annotations

import glob
import os
import re
import shlex
import socket
import sys
from collections.abc import Mapping

from agentvisor.config.model import AgentConfig, ClusterConfig, Config
from agentvisor.config.redis_target import parse_redis_target
from agentvisor.supervise.process import LaunchSpec


def resolve_path(base_dir: str, path: str) -> str:
    """A config path made absolute: relative paths are relative to the config file."""
    return os.path.normpath(os.path.join(base_dir, os.path.expanduser(path)))


def state_dir(config: Config) -> str:
    return resolve_path(config.base_dir, config.supervisor.state_dir)


def node_name(cluster: ClusterConfig) -> str:
    """This node's name in the cluster: ``node_name``, else the host name."""
    return cluster.node_name or socket.gethostname()


def session_namespace(cluster: ClusterConfig, name: str) -> str:
    """The prefix of agent ``name``'s session keys in the cluster's Redis."""
    return f"{cluster.key_prefix}:sessions:{name}"


def session_store_path(config: Config, name: str) -> str:
    """The session store shared by the replicas of one agent (failover resumes from it)."""
    return os.path.join(state_dir(config), "sessions", f"{name}.sqlite3")


def log_path(config: Config, name: str, replica: int, stream: str) -> str:
    """The rotating log file of one replica's ``stdout`` or ``stderr``."""
    return os.path.join(state_dir(config), "logs", f"{name}.{replica}.{stream}.log")


def forget_agent_files(config: Config, name: str) -> list[str]:
    """Delete what agent ``name`` left in ``state_dir``: its log files (rotated ones too)
    and its session store; the paths deleted. (Names have no dots, so ``a.*`` is
    agent ``a``'s alone.)"""
    logs = glob.escape(os.path.join(state_dir(config), "logs"))
    store = session_store_path(config, name)
    paths = [
        *glob.glob(os.path.join(logs, f"{name}.[0-9]*.std*.log*")),
        *(store + suffix for suffix in ("", "-wal", "-shm", "-journal")),
    ]
    deleted = []
    for path in paths:
        try:
            os.remove(path)
        except FileNotFoundError:
            continue
        deleted.append(path)
    return deleted


def session_store_environment(config: Config, name: str) -> dict[str, str]:
    """Where agent ``name``'s workers keep sessions: Redis in a cluster, else a SQLite file."""
    cluster = config.cluster
    if cluster is None:
        return {"AGENTVISOR_SESSION_STORE": session_store_path(config, name)}
    return {
        "AGENTVISOR_SESSION_STORE": parse_redis_target(cluster.redis_url).encode(),
        "AGENTVISOR_SESSION_NAMESPACE": session_namespace(cluster, name),
        "AGENTVISOR_NODE": node_name(cluster),
    }


_BARE_PYTHON = re.compile(r"python3?")


def _program(word: str) -> str:
    """``python`` / ``python3`` as a bare program name means agentvisor's interpreter."""
    return sys.executable if _BARE_PYTHON.fullmatch(word) else word


def _substitute(arg: str, values: Mapping[str, str]) -> str:
    for key, value in values.items():
        arg = arg.replace("{" + key + "}", value)
    return arg


#: agentvisor's own, never a worker's: systemd's notify socket and watchdog (a worker
#: that used them would speak for agentvisor: a READY=1 or a watchdog ping on its
#: behalf), socket activation, and the admin API's token.
PRIVATE_VARIABLES = frozenset(
    {
        "NOTIFY_SOCKET",
        "WATCHDOG_USEC",
        "WATCHDOG_PID",
        "LISTEN_FDS",
        "LISTEN_PID",
        "LISTEN_FDNAMES",
        "AGENTVISOR_TOKEN",
    }
)


def worker_environment(base_env: Mapping[str, str], *secrets: str | None) -> dict[str, str]:
    """What a worker inherits: agentvisor's environment without what is agentvisor's own.

    A variable holding one of the ``secrets`` (the admin token, the metrics token) under
    another name (``token = "${MY_TOKEN}"``) is left out too. An agent's
    ``environment`` may still set any of them on purpose.
    """
    held = {secret for secret in secrets if secret}
    return {
        key: value
        for key, value in base_env.items()
        if key not in PRIVATE_VARIABLES and value not in held
    }


def launch_spec(
    name: str,
    agent: AgentConfig,
    replica: int,
    port: int,
    config: Config,
    base_env: Mapping[str, str],
) -> LaunchSpec:
    values = {"port": str(port), "host": agent.host, "name": name, "replica": str(replica)}
    env = worker_environment(base_env, config.admin.token, config.admin.metrics_token)
    env.update(
        AGENTVISOR_SERVICE=name,
        AGENTVISOR_REPLICA=str(replica),
        AGENTVISOR_HOST=agent.host,
        AGENTVISOR_PORT=str(port),
        PORT=str(port),
    )
    if agent.agent is not None:
        argv: tuple[str, ...] = (
            sys.executable,
            "-m",
            "agentvisor.worker",
            resolve_path(config.base_dir, agent.agent),
            "--host",
            agent.host,
            "--port",
            str(port),
            "--runtime",
            agent.runtime.value,
            "--max-sessions",
            str(agent.max_sessions),
            "--session-timeout",
            f"{agent.session_timeout:g}",
            "--on-busy",
            agent.on_busy.value,
            "--ws-path",
            agent.ws_path,
            # Finish or cancel turns before the supervisor's SIGKILL after stopwaitsecs.
            "--shutdown-timeout",
            f"{max(0.5, agent.stopwaitsecs * 0.8):g}",
        )
        env.update(session_store_environment(config, name))
        env["PYTHONUNBUFFERED"] = "1"
    else:
        assert agent.command is not None  # validation guarantees exactly one
        words = shlex.split(agent.command) if isinstance(agent.command, str) else agent.command
        argv = tuple(_substitute(word, values) for word in words)
        if argv:
            argv = (_program(argv[0]), *argv[1:])
    env.update({key: _substitute(value, values) for key, value in agent.environment.items()})
    directory = agent.directory if agent.directory is not None else "."
    return LaunchSpec(
        argv=argv, env=env, cwd=resolve_path(config.base_dir, directory), user=agent.user
    )
