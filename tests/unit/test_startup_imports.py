"""Issue 11.9: ``agentvisor run`` starts its workers before it imports the web stack.

What the daemon imports before its first spawn is what every start waits for;
the router, the admin API and the HTTP client come later, in a thread
(``daemon.import_web_stack``). A fresh interpreter is the only honest place to
look: this test process has imported everything already.
"""

from __future__ import annotations

import json
import subprocess
import sys

#: Imported by the router, the admin API, the CLI client or the agent SDK; none is
#: needed to read the config, open the store and start workers.
LATER = (
    "quart",
    "quart_trio",
    "flask",
    "hypercorn",
    "httpx",
    "rich",
    "trio_websocket",
    "argcomplete",
)


def _modules_after(code: str) -> set[str]:
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    return set(json.loads(result.stdout.splitlines()[-1]))


def test_what_runs_before_the_first_worker_imports_no_web_stack() -> None:
    loaded = _modules_after(
        "import agentvisor.cli.daemon, agentvisor.daemon, agentvisor.supervise.supervisor"
    )
    assert not {name for name in loaded if name.split(".")[0] in LATER}
    assert "agentvisor.agent" not in loaded  # the SDK of agent files


def test_the_web_stack_and_the_check_clients_are_imported_by_the_daemon_later() -> None:
    loaded = _modules_after("import agentvisor.daemon; agentvisor.daemon.import_web_stack()")
    assert {"quart_trio", "hypercorn"} <= loaded
    code = "import agentvisor.daemon; agentvisor.daemon.import_check_clients()"
    assert {"httpx", "trio_websocket"} <= _modules_after(code)


def test_the_check_clients_are_needed_only_by_health_checks_and_agent_workers() -> None:
    from agentvisor.config.model import AgentConfig, Config, HealthConfig
    from agentvisor.daemon import check_clients_needed

    quiet = AgentConfig(command="sleep 60", health=HealthConfig(enabled=False))
    assert not check_clients_needed(Config(agents={"a": quiet, "b": quiet}))
    checked = AgentConfig(command="sleep 60")
    assert check_clients_needed(Config(agents={"a": quiet, "b": checked}))
    agent = AgentConfig(agent="agent.py", health=HealthConfig(enabled=False))
    assert check_clients_needed(Config(agents={"a": agent}))
