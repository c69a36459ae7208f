"""The one error tree. Every class carries the stable API code of API.md.

Messages are one sentence people read: what failed, the offending value, the
remedy when known. The admin API maps ``code`` to an HTTP status in
``agentvisor.admin.errors``; nothing else chooses statuses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import attrs


class AgentvisorError(Exception):
    """Root of every expected failure in agentvisor."""

    code: ClassVar[str] = "INTERNAL_ERROR"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details


class InvalidRequest(AgentvisorError):
    code = "INVALID_REQUEST"


class Unauthorized(AgentvisorError):
    code = "UNAUTHORIZED"


class ServiceNotFound(AgentvisorError):
    code = "SERVICE_NOT_FOUND"

    def __init__(self, name: str) -> None:
        super().__init__(f"Service '{name}' not found", service=name)


class ServiceAlreadyExists(AgentvisorError):
    code = "SERVICE_ALREADY_EXISTS"


class ServiceAutoscaled(AgentvisorError):
    """An operator ``scale`` of an agent whose replica count the autoscaler owns."""

    code = "SERVICE_AUTOSCALED"


class RuleAlreadyExists(AgentvisorError):
    """A new ``[[routes]]`` entry takes a name another rule has."""

    code = "RULE_ALREADY_EXISTS"


class RuleNotFound(AgentvisorError):
    """No ``[[routes]]`` entry has this name."""

    code = "RULE_NOT_FOUND"

    def __init__(self, name: str) -> None:
        super().__init__(f"Routing rule '{name}' not found", rule=name)


class ServiceStartFailed(AgentvisorError):
    code = "SERVICE_START_FAILED"


class PortInUse(AgentvisorError):
    code = "PORT_IN_USE"


class InsufficientResources(AgentvisorError):
    code = "INSUFFICIENT_RESOURCES"


class ConnectionNotFound(AgentvisorError):
    code = "CONNECTION_NOT_FOUND"

    def __init__(self, connection_id: str) -> None:
        super().__init__(f"Connection '{connection_id}' not found", connection_id=connection_id)


class RoutingFailed(AgentvisorError):
    """The router is not running, or cannot decide for the given client."""

    code = "ROUTING_FAILED"


class ClusterNotConfigured(AgentvisorError):
    """A cluster request to an agentvisor without ``[cluster]``."""

    code = "CLUSTER_NOT_CONFIGURED"


class ConfigLocked(AgentvisorError):
    """Another node holds the cluster's config edit lock, or this edit lost it (fencing)."""

    code = "CONFIG_LOCKED"


class ConfigWriteFailed(AgentvisorError):
    code = "CONFIG_WRITE_FAILED"


class AlreadyRunning(AgentvisorError):
    """Another agentvisor holds the pidfile of this state_dir."""

    code = "ALREADY_RUNNING"


@attrs.frozen
class ConfigIssue:
    """One validation problem, located in the file when possible."""

    path: str  # key path, e.g. "agents.weather.replicas" or "routes[1].strategy"
    message: str
    file: str = ""
    line: int = 0  # 1-based; 0 when unknown
    col: int = 0  # 1-based; 0 when unknown

    def __str__(self) -> str:
        what = f"{self.path}: {self.message}" if self.path else self.message
        if not self.file:  # not in a file (an edit refused before it was written)
            return what
        where = f"{self.file}:{self.line}:{self.col or 1}" if self.line else self.file
        return f"{where} {what}" if self.path else f"{where}: {self.message}"


class ConfigInvalid(AgentvisorError):
    """The config does not validate; ``issues`` lists every problem found."""

    code = "CONFIG_INVALID"

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        self.issues = tuple(issues)
        count = len(self.issues)
        first = str(self.issues[0]) if self.issues else "unknown problem"
        summary = first if count == 1 else f"{count} problems, the first: {first}"
        super().__init__(f"invalid config: {summary}", errors=[str(issue) for issue in self.issues])


def json_type(value: object) -> str:
    """A JSON value's kind as a message names it: ``a string``, ``an array``, ``null``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
