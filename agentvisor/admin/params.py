"""Query parameters, declared once: each one parses itself and documents itself.

A route reads ``LIMIT.parse(request.args)``; its OpenAPI operation lists
``LIMIT.openapi()``. Bounds, defaults and the choices live in the one
declaration, so the document and the server cannot disagree about what is
accepted (a schema-valid value the server refused, or a value the schema
left unbounded that overflowed SQLite, were both bugs of two hand-kept
copies). Parsing errors are 400 ``INVALID_REQUEST`` naming the parameter
(``errors.query_*``). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from agentvisor.admin.errors import (
    EPOCH_SECONDS,
    query_bool,
    query_choice,
    query_duration,
    query_float,
    query_int,
    query_time,
)
from agentvisor.errors import InvalidRequest

Schema = dict[str, Any]
STRING: Schema = {"type": "string"}
BOOLEAN: Schema = {"type": "boolean"}

#: No integer parameter is unbounded: SQLite stores 64-bit integers, JSON clients 53-bit.
MAX_INTEGER = 2**53 - 1
MAX_LIMIT = 1000
#: Deep pages are refused rather than scanned.
MAX_OFFSET = 100_000
#: A replica's index (``instance``) is below ``replicas``' maximum.
MAX_INSTANCE = 100_000
#: ``timeout`` of the operations that wait for a result, in seconds.
MAX_OPERATION_TIMEOUT = 3600.0
DEFAULT_OPERATION_TIMEOUT = 60.0
#: ``1.5``, ``30s``, ``5m``, ``1h``, ``7d``, ``2w`` (``errors.parse_duration``), at least 1 of
#: its unit: so at least one second, as the server requires.
DURATION_PATTERN = r"^\s*0*[1-9]\d*(\.\d+)?\s*[smhdwSMHDW]?\s*$"

INF = float("inf")

Args = Mapping[str, str]


def query_parameter(name: str, schema: Schema, description: str) -> Schema:
    """An optional query parameter; ``name=`` (empty) means the default, as ``errors.query_*``."""
    return {
        "name": name,
        "in": "query",
        "required": False,
        "allowEmptyValue": True,
        "description": description,
        "schema": schema,
    }


@attrs.frozen
class Integer:
    name: str
    description: str
    default: int
    minimum: int = 0
    maximum: int = MAX_INTEGER

    def parse(self, args: Args) -> int:
        return query_int(args, self.name, self.default, minimum=self.minimum, maximum=self.maximum)

    def openapi(self) -> Schema:
        schema = {"type": "integer", "minimum": self.minimum, "maximum": self.maximum}
        return query_parameter(self.name, {**schema, "default": self.default}, self.description)


@attrs.frozen
class OptionalInteger:
    name: str
    description: str
    minimum: int = 0
    maximum: int = MAX_INTEGER

    def parse(self, args: Args) -> int | None:
        return query_int(args, self.name, None, minimum=self.minimum, maximum=self.maximum)

    def openapi(self) -> Schema:
        schema = {"type": "integer", "minimum": self.minimum, "maximum": self.maximum}
        return query_parameter(self.name, schema, self.description)


@attrs.frozen
class Number:
    name: str
    description: str
    default: float
    minimum: float
    maximum: float

    def parse(self, args: Args) -> float:
        return query_float(
            args, self.name, self.default, minimum=self.minimum, maximum=self.maximum
        )

    def openapi(self) -> Schema:
        schema = {
            "type": "number",
            "minimum": self.minimum,
            "maximum": self.maximum,
            "default": self.default,
        }
        return query_parameter(self.name, schema, self.description)


@attrs.frozen
class Flag:
    name: str
    description: str

    def parse(self, args: Args) -> bool:
        return query_bool(args, self.name)

    def parse_optional(self, args: Args) -> bool | None:
        """None when absent: ``enabled=`` filters only when given."""
        return query_bool(args, self.name) if args.get(self.name) else None

    def openapi(self) -> Schema:
        return query_parameter(self.name, BOOLEAN, self.description)


@attrs.frozen
class Choice:
    name: str
    description: str
    choices: tuple[str, ...]

    def parse(self, args: Args) -> str | None:
        return query_choice(args, self.name, self.choices)

    def openapi(self) -> Schema:
        schema = {"type": "string", "enum": list(self.choices)}
        return query_parameter(self.name, schema, self.description)


@attrs.frozen
class Text:
    """A free string; ``aliases`` are older spellings also read (``service`` for ``service_id``)."""

    name: str
    description: str
    aliases: tuple[str, ...] = ()
    required: bool = False

    def parse(self, args: Args) -> str | None:
        for name in (self.name, *self.aliases):
            value = (args.get(name) or "").strip()
            if value:
                return value
        if self.required:
            raise InvalidRequest(
                f"Query parameter '{self.name}' is required: {self.description.lower()}",
                parameter=self.name,
            )
        return None

    def openapi(self) -> Schema:
        parameter = query_parameter(self.name, STRING, self.description)
        if self.required:
            # Blank (only spaces) is as good as absent: at least one other character.
            parameter.update(required=True, allowEmptyValue=False)
            parameter["schema"] = {"type": "string", "pattern": r"\S"}
        return parameter


@attrs.frozen
class Duration:
    name: str
    description: str
    default: float | None
    minimum: float = 1.0
    maximum: float = 366 * 86400.0

    def parse(self, args: Args) -> float | None:
        """Below ``minimum`` is refused; above ``maximum`` is cut to it (no more is stored)."""
        value = query_duration(args, self.name, self.default, minimum=self.minimum, maximum=INF)
        return None if value is None else min(value, self.maximum)

    def openapi(self) -> Schema:
        schema = {"type": "string", "pattern": DURATION_PATTERN}
        description = (
            f"{self.description}; at least {self.minimum:g}s (a bare number is seconds), "
            f"longer than {self.maximum:g}s is taken as {self.maximum:g}s"
        )
        return query_parameter(self.name, schema, description)


@attrs.frozen
class Time:
    name: str
    description: str

    def parse(self, args: Args) -> float | None:
        return query_time(args, self.name)

    def openapi(self) -> Schema:
        schema = {
            "type": "string",
            "anyOf": [{"format": "date-time"}, {"pattern": f"^{EPOCH_SECONDS.pattern}$"}],
        }
        description = f"{self.description}: an RFC 3339 time or seconds since the epoch"
        return query_parameter(self.name, schema, description)


def limit(default: int = 100) -> Integer:
    return Integer("limit", f"At most this many items (1 to {MAX_LIMIT})", default, 1, MAX_LIMIT)


LIMIT = limit()
OFFSET = Integer("offset", "Items to skip (pagination)", 0, 0, MAX_OFFSET)
INSTANCE = OptionalInteger("instance", "One replica only", 0, MAX_INSTANCE)
OPERATION_TIMEOUT = Number(
    "timeout",
    "Seconds to wait for the operation to finish before answering 202",
    DEFAULT_OPERATION_TIMEOUT,
    0.0,
    MAX_OPERATION_TIMEOUT,
)
SERVICE_FILTER = Text("service_id", "One service (stable id or name)", aliases=("service",))


def openapi_of(*params: Any) -> tuple[Schema, ...]:
    """The OpenAPI parameters of these declarations, in order."""
    return tuple(param.openapi() for param in params)
