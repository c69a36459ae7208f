"""Answers declared once: the handler builds the model, :func:`dump` (cattrs) turns it
into the ``data`` of the envelope, and the document's component schemas are derived
from the models (``api.schema.components``), so what is sent is what is described.

This module has the editing endpoints' answers and :data:`MODELS`, every answer
model of the API; the others are in ``api.services``, …. A model's nested models
are components of their own, found from the field types. A field whose value is
described by a schema still written by hand (a rule, a reload's outcome, in
``admin/openapi/``) carries its ``$ref`` in its metadata. Pure: no I/O.
"""

from __future__ import annotations

from typing import Any, Literal

import cattrs
from attrs import field, frozen

from agentvisor.api.schema import OPENAPI, Schema, components, ref
from agentvisor.api.services import (
    Instance,
    ServiceDetail,
    ServiceItem,
    ServiceList,
    ServiceStatsResult,
)

#: Answer models → JSON; ``dict[str, Any]`` fields pass through as they are.
CONVERTER = cattrs.Converter()

#: Metadata of fields whose value is described by a hand-written component.
RELOAD_RESULT = {OPENAPI: ref("ReloadResult")}
ROUTING_RULE = {OPENAPI: ref("RoutingRule")}
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
    elapsed_seconds: float
    service: ServiceItem


@frozen
class InstanceList:
    """The instances of a service."""

    service_id: str
    name: str
    instances: list[Instance]
    total: int


@frozen
class RegisterResult:
    """A service registered: written to agentvisor.toml and applied."""

    service_id: str
    name: str
    message: str
    endpoint: str | None
    autostart: bool
    service: ServiceDetail
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
    failed: list[str]
    service: ServiceDetail
    reload: dict[str, Any] = field(metadata=RELOAD_RESULT)


@frozen
class Replicas:
    """The replicas before and after the change."""

    previous: int
    desired: int


@frozen
class ScaleResult:
    """The number of replicas set, kept in agentvisor.toml."""

    service_id: str
    name: str
    replicas: Replicas
    service: ServiceDetail
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
    elapsed_seconds: float
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


def dump(answer: Any) -> Any:
    """An answer model (or a list of them) as JSON."""
    return CONVERTER.unstructure(answer)


#: Every answer model of the API (their nested models are found from them).
MODELS: tuple[type, ...] = (
    ServiceList,
    ServiceDetail,
    ServiceStatsResult,
    OperationResult,
    InstanceList,
    RegisterResult,
    ConfigUpdateResult,
    ScaleResult,
    UnregisterResult,
    RuleResult,
    RuleDeleted,
)


def answer_schemas() -> dict[str, Schema]:
    """The component schemas of :data:`MODELS` and their nested models.

    Answers may grow fields without breaking clients: unknown properties are
    allowed; numbers are described without the bounds requests have.
    """
    return components(MODELS, extra=True, bounded=False)
