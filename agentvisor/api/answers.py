"""Answers of the editing endpoints, declared once: the handler builds the model, the
document's schema is derived from it (``api.schema``), so what is sent is what is
described.

An :class:`Answer` names its component and dumps an instance to the JSON
``data`` of the envelope. A field whose value is described elsewhere (the
service's detail, a rule, a reload's outcome, written in
``admin/openapi/``) carries its ``$ref`` in its metadata. Pure: no I/O.
"""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

import attrs
from attrs import field, frozen

from agentvisor.api.schema import OPENAPI, Schema, model_schema

T = TypeVar("T")


def component(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


#: Metadata of fields whose value is built by its own code and described by a component.
SERVICE_DETAIL = {OPENAPI: component("ServiceDetail")}
RELOAD_RESULT = {OPENAPI: component("ReloadResult")}
ROUTING_RULE = {OPENAPI: component("RoutingRule")}
SERVICE_ITEM = {OPENAPI: component("ServiceItem")}
INSTANCES = {OPENAPI: {"type": "array", "items": component("Instance")}}
Applied = Literal["restarted", "scaled", "updated live", "unchanged"]
Action = Literal["start", "stop", "restart"]


@frozen
class OperationResult:
    """A start, stop or restart: done, or still going on in the supervisor (202)."""

    action: Action
    service_id: str
    name: str
    settled: bool = field(
        metadata={
            OPENAPI: {"description": "False (with 202) when still in progress after `timeout`"}
        }
    )
    elapsed_seconds: float = field()
    service: dict[str, Any] = field(metadata=SERVICE_ITEM)


@frozen
class InstanceList:
    """The instances of a service."""

    service_id: str
    name: str
    instances: list[dict[str, Any]] = field(metadata=INSTANCES)
    total: int = field()


@frozen
class RegisterResult:
    """A service registered: written to agentvisor.toml and applied."""

    service_id: str
    name: str
    message: str
    endpoint: str | None
    autostart: bool
    service: dict[str, Any] = field(metadata=SERVICE_DETAIL)
    reload: dict[str, Any] = field(metadata=RELOAD_RESULT)


@frozen
class ConfigUpdateResult:
    """A service's settings changed, and how that was applied."""

    service_id: str
    name: str
    changed: bool
    applied: Applied
    restarted: bool
    settled: bool = field(
        metadata={OPENAPI: {"description": "False (with 202) while restarts go on after `timeout`"}}
    )
    failed: list[str] = field()
    service: dict[str, Any] = field(metadata=SERVICE_DETAIL)
    reload: dict[str, Any] = field(metadata=RELOAD_RESULT)


@frozen
class Replicas:
    previous: int
    desired: int


@frozen
class ScaleResult:
    """The number of replicas set, kept in agentvisor.toml."""

    service_id: str
    name: str
    replicas: Replicas
    service: dict[str, Any] = field(metadata=SERVICE_DETAIL)
    reload: dict[str, Any] = field(metadata=RELOAD_RESULT)


@frozen
class UnregisterResult:
    """A service drained, stopped and removed from agentvisor.toml."""

    service_id: str
    name: str
    removed: bool
    stopped: bool = field(
        metadata={OPENAPI: {"description": "False (with 202) when still stopping after `timeout`"}}
    )
    elapsed_seconds: float = field()
    reload: dict[str, Any] = field(metadata=RELOAD_RESULT)


@frozen
class RuleResult:
    """A routing rule as written and applied."""

    rule: dict[str, Any] = field(metadata=ROUTING_RULE)
    reload: dict[str, Any] = field(metadata=RELOAD_RESULT)


@frozen
class RuleDeleted:
    """A routing rule removed from agentvisor.toml."""

    rule_id: str
    deleted: bool
    reload: dict[str, Any] = field(metadata=RELOAD_RESULT)


def _by_name(cls: type) -> Schema:
    return component(cls.__name__)


@attrs.frozen
class Answer(Generic[T]):
    """The ``data`` of an answer: its model, its component (the model's name)."""

    model: type[T]

    @property
    def name(self) -> str:
        return self.model.__name__

    def schema(self) -> Schema:
        # Answers may grow fields without breaking clients: unknown properties allowed.
        return model_schema(self.model, nested=_by_name, extra=True)

    def dump(self, answer: T) -> dict[str, Any]:
        return attrs.asdict(answer, recurse=True)  # type: ignore[arg-type]

    def ref(self) -> Schema:
        return component(self.name)


OPERATED = Answer(OperationResult)
INSTANCE_LIST = Answer(InstanceList)
REGISTERED = Answer(RegisterResult)
CONFIG_UPDATED = Answer(ConfigUpdateResult)
SCALED = Answer(ScaleResult)
UNREGISTERED = Answer(UnregisterResult)
RULE_WRITTEN = Answer(RuleResult)
RULE_DELETED = Answer(RuleDeleted)
#: Every declared answer, for ``#/components/schemas`` (nested models too).
ANSWERS: tuple[Answer[Any], ...] = (
    OPERATED,
    INSTANCE_LIST,
    REGISTERED,
    CONFIG_UPDATED,
    SCALED,
    Answer(Replicas),
    UNREGISTERED,
    RULE_WRITTEN,
    RULE_DELETED,
)
