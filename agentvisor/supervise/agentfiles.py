"""Load-check the agent files of a config, each in a subprocess with a timeout.

``agentvisor check`` and a reload call :func:`check_agent_files` after the
config validates: every distinct ``agent =`` file is compiled, imported and
searched for ``create_agent()`` / ``agent`` by ``python -c`` on agentvisor's
own interpreter, in the directory and environment its worker would get (so
an import that hangs, exits or crashes the interpreter cannot touch the
caller). ``create_agent()`` itself is not called: it may need the network.
A failure is a :class:`ConfigIssue` at the ``agent`` key naming the agent
file and its line, e.g.
``agentvisor.toml:37:9 agents.weather.agent: examples/weather.py:12: SyntaxError: invalid syntax``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Collection, Mapping
from concurrent.futures import ThreadPoolExecutor

import attrs

from agentvisor.config.interpolate import EnvironmentUse
from agentvisor.config.load import load_config_and_environment, locate
from agentvisor.config.model import Config
from agentvisor.errors import ConfigInvalid, ConfigIssue
from agentvisor.supervise.spec import resolve_path

TIMEOUT = 20.0  # seconds for one file's import: generous, an import that hangs still ends

# Runs in the subprocess: load the file as the worker would, print what went wrong as JSON.
_PROBE = """
import json, os, sys, traceback
from agentvisor.worker.load import AgentLoadError, agent_factory, load_module
path = sys.argv[1]
try:
    agent_factory(load_module(path), path)
except AgentLoadError as error:
    cause, line = error.__cause__, None
    if isinstance(cause, SyntaxError):
        line = cause.lineno
    elif cause is not None:
        for frame, number in traceback.walk_tb(cause.__traceback__):
            if os.path.abspath(frame.f_code.co_filename) == path:
                line = number
    print(json.dumps({"line": line, "cause": error.cause}))
    sys.exit(2)
"""


@attrs.frozen
class _Probe:
    path: str  # absolute
    cwd: str
    env: Mapping[str, str]


def _run(probe: _Probe, timeout: float) -> str | None:
    """``None`` when the file loads, else why not (one line, with the agent file's line)."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE, probe.path],
            cwd=probe.cwd,
            env=dict(probe.env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"{probe.path}: importing it did not finish within {timeout:g}s"
    except OSError as error:
        return f"{probe.path}: cannot run {sys.executable} ({error.strerror or error})"
    if done.returncode == 0:
        return None
    try:
        found = json.loads(done.stdout.strip().splitlines()[-1])
        line, cause = found["line"], str(found["cause"])
    except (IndexError, ValueError, KeyError, TypeError):
        last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        return f"{probe.path}: importing it failed ({last})"
    if line is not None:
        return f"{probe.path}:{line}: {cause.replace(f' at line {line}', '', 1)}"
    return f"{probe.path}: {cause}"


def check_agent_files(
    config: Config,
    env: Mapping[str, str] | None = None,
    *,
    shown_as: str | None = None,
    timeout: float = TIMEOUT,
    only: Collection[str] | None = None,
) -> list[ConfigIssue]:
    """Every agent file of ``config`` that would not load, located at its ``agent`` key.

    ``shown_as`` names the config file in the issues (default: its absolute path);
    ``only``: the agents to check (a reload checks those it would start or restart).
    """
    base_env = dict(os.environ if env is None else env)
    probes: dict[str, _Probe] = {}
    users: dict[str, list[str]] = {}
    for name, agent in config.agents.items():
        if agent.agent is None or (only is not None and name not in only):
            continue
        path = resolve_path(config.base_dir, agent.agent)
        cwd = resolve_path(config.base_dir, agent.directory or ".")
        probe_env = {**base_env, **agent.environment, "PYTHONDONTWRITEBYTECODE": "1"}
        probes.setdefault(path, _Probe(path, cwd, probe_env))
        users.setdefault(path, []).append(name)
    if not probes:
        return []
    workers = min(len(probes), os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        found = pool.map(lambda p: _run(p, timeout), probes.values())
        reasons = dict(zip(probes, found, strict=True))
    text = _read(config.source)
    file = shown_as or config.source
    issues = []
    for path, reason in reasons.items():
        if reason is None:
            continue
        shown = _shown(reason, config.base_dir)
        for name in users[path]:
            key = f"agents.{name}.agent"
            line, col = locate(text, key) if text else (0, 0)
            issues.append(ConfigIssue(key, shown, file=file, line=line, col=col))
    return sorted(issues, key=lambda i: (i.line == 0, i.line, i.col))


def _shown(reason: str, base_dir: str) -> str:
    """Agent paths relative to the config's directory when they are under it."""
    prefix = base_dir.rstrip(os.sep) + os.sep
    return reason.replace(prefix, "") if base_dir else reason


def _read(source: str) -> str:
    try:
        with open(source, encoding="utf-8") as file:
            return file.read()
    except (OSError, UnicodeDecodeError):
        return ""


def check_changed_agent_files(
    old: Config, new: Config, *, shown_as: str | None = None
) -> list[ConfigIssue]:
    """The agent files of the agents ``new`` adds or changes that would not load
    (an unchanged agent keeps running as it is, so its file is not checked again)."""
    changed = [name for name, agent in new.agents.items() if old.agents.get(name) != agent]
    return check_agent_files(new, shown_as=shown_as, only=changed) if changed else []


def load_checked(path: str, running: Config) -> tuple[Config, EnvironmentUse]:
    """The config file loaded with agentvisor's environment, validated, and the agent
    files of the agents it adds or changes load-checked (blocking): an unchanged agent
    is not restarted by a reload. Also which ``${VAR}`` it references."""
    config, environment = load_config_and_environment(path)
    issues = check_changed_agent_files(running, config, shown_as=path)
    if issues:
        raise ConfigInvalid(issues)
    return config, environment
