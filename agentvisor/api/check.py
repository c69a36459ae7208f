"""Request bodies checked against the schema ``/openapi.json`` publishes for them.

:class:`Body` is one body's declaration: its component name, its schema
(derived from the attrs models, ``api.schema``) and how a valid body becomes
what the handler uses. The server parses with :meth:`Body.parse`, the Python
client checks what it sends with :meth:`Body.check`: both run the same
validator (jsonschema, OpenAPI 3.0's dialect: draft 4 plus ``nullable``) on
the same schema, so a body the document accepts is one the server accepts,
and a refusal is a 400 ``INVALID_REQUEST`` whose one-line message names the
field (``Field 'config.port' must be an integer from 1 to 65535, got 70000``)
and whose details carry it (``field``). Pure: no I/O.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import attrs

from agentvisor.api.schema import Schema
from agentvisor.config.convert import did_you_mean
from agentvisor.errors import InvalidRequest, json_type

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError

T = TypeVar("T")


@functools.cache
def openapi30_validator() -> Any:
    """jsonschema's draft 4 with OpenAPI 3.0's ``nullable``; formats (ipv4, ipv6…) are
    checked. Imported on first use: agentvisorctl's commands that send no body (and a
    shell's Tab) do not pay the ~0.4 s of jsonschema and the validators."""
    import jsonschema

    draft4_type = jsonschema.Draft4Validator.VALIDATORS["type"]

    def type_or_null(
        validator: Any, types: Any, instance: Any, schema: Mapping[str, Any]
    ) -> Iterator[ValidationError]:
        """OpenAPI 3.0's ``nullable: true``: null passes the ``type`` beside it."""
        if instance is None and schema.get("nullable"):
            return
        yield from draft4_type(validator, types, instance, schema)

    return jsonschema.validators.extend(jsonschema.Draft4Validator, {"type": type_or_null})


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text} is too large")
    return value


def parse_json_object(raw: bytes | str) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 saying what is wrong with it."""
    if not raw.strip():
        raise InvalidRequest("The request needs a JSON object as its body")
    try:
        body = json.loads(raw, parse_constant=_no_constant, parse_float=_finite)
    except UnicodeDecodeError:
        raise InvalidRequest("The request body is not UTF-8") from None
    except json.JSONDecodeError as error:
        raise InvalidRequest(
            f"The request body is not valid JSON: {error.msg} at line {error.lineno} "
            f"column {error.colno}",
            line=error.lineno,
            column=error.colno,
        ) from None
    except (ValueError, RecursionError) as error:
        raise InvalidRequest(f"The request body is not acceptable JSON: {error}") from None
    if not isinstance(body, dict):
        raise InvalidRequest(f"The request body must be a JSON object, got {json_type(body)}")
    return body


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


def _where(path: Any) -> str:
    where = ""
    for segment in path:
        where += f"[{segment}]" if isinstance(segment, int) else f".{segment}" if where else segment
    return where


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def wanted(schema: Mapping[str, Any]) -> str:
    """What a schema asks for, in words: ``an integer from 1 to 65535``, ``true or false``."""
    if "anyOf" in schema:  # (null, a value's default, goes unsaid)
        words = " or ".join(dict.fromkeys(wanted(each) for each in schema["anyOf"]))
    elif "enum" in schema:
        values = [value for value in schema["enum"] if value is not None]
        words = "one of " + ", ".join(json.dumps(value) for value in values)
    else:
        words = _typed(schema)
    return words


_FORMATS: Mapping[str, str] = {"ipv4": "an IPv4 address", "ipv6": "an IPv6 address"}


def _typed(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if "format" in schema and kind in (None, "string"):
        return _FORMATS.get(schema["format"], f"a {schema['format']} string")
    if kind == "boolean":
        return "true or false"
    if kind in ("integer", "number"):
        words = "an integer" if kind == "integer" else "a number"
        low, high = schema.get("minimum"), schema.get("maximum")
        above = "above" if schema.get("exclusiveMinimum") else "at least"
        if low is not None and high is not None and not schema.get("exclusiveMinimum"):
            return f"{words} from {_number(low)} to {_number(high)}"
        if low is not None:
            return f"{words} {above} {_number(low)}"
        return words
    if kind == "string":
        if "maxLength" in schema:
            return f"a string of at most {schema['maxLength']} characters"
        return "a string"
    if kind == "array":
        items = schema.get("items", {})
        inner = "strings" if items.get("type") == "string" else "items"
        if items.get("type") == "object":
            inner = "objects"
        return f"an array of {inner}"
    if kind == "object":
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict) and extra.get("type") == "string":
            return "an object of strings"
        return "an object"
    return "a value"


def _unknown(errors: list[ValidationError]) -> InvalidRequest:
    """Every unknown key of the body (at any depth) in one message, with suggestions."""
    names: list[str] = []
    hints: list[tuple[str, str]] = []
    for error in errors:
        where = _where(error.absolute_path)
        known = list(error.schema.get("properties", {}))
        for key in error.instance:
            if key not in known:
                names.append(f"{where}.{key}" if where else key)
                if close := did_you_mean(key, known):
                    hints.append((names[-1], close))
    shown = ", ".join(f"'{name}'" for name in names)
    several = len(names) > 1
    words = [f"'{close}'" + (f" for '{name}'" if several else "") for name, close in hints]
    hint = f" (did you mean {', '.join(words)}?)" if words else ""
    kind = errors[0].schema.get("title", "request")
    plural = "s" if several else ""
    return InvalidRequest(f"Unknown {kind} field{plural} {shown}{hint}", fields=names)


def refusal(error: ValidationError) -> InvalidRequest:
    """One validation error as the API's 400, naming the field and the value."""
    where = _where(error.absolute_path)
    field = f"Field '{where}'" if where else "The request body"
    if error.validator == "additionalProperties":
        return _unknown([error])
    if error.validator == "required":
        missing = next(key for key in error.validator_value if key not in error.instance)
        name = f"{where}.{missing}" if where else missing
        about = error.schema.get("properties", {}).get(missing, {}).get("description")
        meaning = f": {about[0].lower()}{about[1:]}" if about else ""
        return InvalidRequest(f"Field '{name}' is required{meaning}", field=name)
    schema = error.schema
    value = error.instance
    if error.validator == "pattern":
        about = schema.get("description", f"a string matching {schema['pattern']}")
        message = f"{field} must be {about[0].lower()}{about[1:]}, got {_shown(value)}"
    elif error.validator == "maxLength":
        message = f"{field} must be at most {schema['maxLength']} characters, got {len(value)}"
    elif error.validator == "minLength":
        message = f"{field} must not be empty"
    elif error.validator == "format":
        message = f"{field} must be {_typed(schema)}, got {_shown(value)}"
    elif error.validator in ("type", "enum", "anyOf", "minimum", "maximum"):
        got = (
            _shown(value)
            if error.validator in ("minimum", "maximum", "enum")
            else (f"{json_type(value)} {_shown(value)}" if value is not None else "null")
        )
        message = f"{field} must be {wanted(schema)}, got {got}"
    else:
        message = f"{field}: {error.message}"
    return InvalidRequest(message, field=where) if where else InvalidRequest(message)


def check_body(validator: Any, body: Any) -> None:
    """Raise the 400 of ``body``'s errors: unknown keys first (all of them, at any depth),
    else every error, the most relevant (a shallow one) first; ``details.errors`` lists
    them one sentence each."""
    from jsonschema.exceptions import relevance

    errors = sorted(validator.iter_errors(body), key=relevance, reverse=True)
    if not errors:
        return
    unknown = [error for error in errors if error.validator == "additionalProperties"]
    if unknown:
        raise _unknown(sorted(unknown, key=lambda error: len(error.absolute_path)))
    refusals = [refusal(error) for error in errors]
    first = refusals[0]
    if len(refusals) == 1:
        raise first
    more = len(refusals) - 1
    raise InvalidRequest(
        f"{first.message} (and {more} more problem{'s' if more > 1 else ''})",
        **first.details,
        errors=[each.message for each in refusals],
    )


@attrs.frozen
class Body(Generic[T]):
    """A request body, declared once: ``name`` in ``#/components/schemas``, its ``schema``,
    and ``load`` making the handler's value of a valid body. ``optional``: an empty body
    is ``{}``."""

    name: str
    schema: Schema
    load: Callable[[dict[str, Any]], T]
    optional: bool = False
    #: Top-level keys refused with their own message (``name`` of a service cannot change).
    refused: Mapping[str, str] = attrs.field(factory=dict)
    _validator: Any = attrs.field(init=False, default=None, repr=False, eq=False)

    def validator(self) -> Any:
        """The schema's validator, built on first use (the schema checked against the
        meta-schema then: a declaration error fails the first request, and the tests)."""
        if self._validator is None:
            cls = openapi30_validator()
            cls.check_schema(self.schema)
            object.__setattr__(
                self, "_validator", cls(self.schema, format_checker=cls.FORMAT_CHECKER)
            )
        return self._validator

    def check(self, body: Any) -> dict[str, Any]:
        """``body`` if the schema accepts it, else the 400 naming the field."""
        if not isinstance(body, dict):
            raise InvalidRequest(f"The request body must be a JSON object, got {json_type(body)}")
        for key, message in self.refused.items():
            if key in body:
                raise InvalidRequest(f"Field '{key}' {message}", field=key)
        check_body(self.validator(), body)
        return body

    def parse(self, raw: bytes | str) -> T:
        """The raw request body → the handler's value, or a 400."""
        if self.optional and not raw.strip():
            return self.load({})
        return self.load(self.check(parse_json_object(raw)))

    def ref(self) -> Schema:
        return {"$ref": f"#/components/schemas/{self.name}"}
