"""What every ``agentvisorctl`` command gets: the client, the console, and how to fail.

Kept apart from ``ctl`` (parsing and dispatch) so that the command modules
(``ctl``, ``manage``, ``observe``) share it without importing one another.
"""

from __future__ import annotations

import sys
from typing import Any

import attrs
from rich.console import Console

from agentvisor.cli.exits import EXIT_FAILED as EXIT_FAILED
from agentvisor.cli.exits import EXIT_OK as EXIT_OK
from agentvisor.cli.exits import EXIT_UNREACHABLE as EXIT_UNREACHABLE
from agentvisor.cli.exits import EXIT_USAGE as EXIT_USAGE
from agentvisor.client import AgentvisorClient

PROG = "agentvisorctl"
#: The most a listing asks for at once (the API's bound).
PAGE = 1000


class UsageError(Exception):
    """A command line that cannot be run as given (exit 2)."""


@attrs.frozen
class Context:
    client: AgentvisorClient
    console: Console
    json: bool
    prog: str = PROG

    def out(self, line: str) -> None:
        print(line, flush=True)

    def err(self, line: str) -> None:
        print(f"{self.prog}: {line}", file=sys.stderr, flush=True)


def all_services(client: AgentvisorClient) -> list[dict[str, Any]]:
    services: list[dict[str, Any]] = []
    while True:
        page = client.services(limit=PAGE, offset=len(services))
        services.extend(page["services"])
        if not page["page"]["has_next"]:
            return services
