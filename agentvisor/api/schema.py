"""OpenAPI 3.0 schemas derived from attrs models: types from the annotations, bounds from
the fields' attrs validators.

A model is declared once, as an attrs class with the validators it needs
(``ge``, ``le``, ``gt``, ``max_len``, ``matches_re``, ``in_``…; ``optional``
and lists of them are looked through). :func:`model_schema` turns it into the
schema that ``/openapi.json`` publishes and that the server (and the client)
validate request bodies against (``api.check``), so the three cannot
disagree. A field's ``metadata={"openapi": {...}}`` adds what a validator
cannot say (a description, a format, a bound of a hand-written validator).

Mapping: ``str``/``int``/``float``/``bool``; ``tuple[X, ...]`` and
``list[X]`` → array; ``dict[str, X]`` → object of X; a ``StrEnum`` or a
``Literal`` → enum; ``X | None`` → nullable; other unions → ``anyOf``;
``Any`` → any value; an attrs class → a nested object. Every number gets a
maximum (:data:`MAX_NUMBER` unless the model says less): SQLite and JSON
clients have 53-bit integers, and a bound is what makes "out of range" a 400
rather than an overflow further down. Pure: no I/O.
"""

from __future__ import annotations

import enum
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

Schema = dict[str, Any]

#: The largest number a request body may carry (2^53 - 1, exact in every JSON client).
MAX_NUMBER = 2**53 - 1
#: Metadata key of a field's extra schema keywords.
OPENAPI = "openapi"

#: ``matches_re``'s ``func`` → the JSON Schema pattern (which is searched, unanchored).
_ANCHORED: Mapping[str, str] = {"fullmatch": "^(?:{})$", "match": "^(?:{})", "search": "{}"}
_COMPARISONS: Mapping[str, tuple[str, bool]] = {
    ">=": ("minimum", False),
    ">": ("minimum", True),
    "<=": ("maximum", False),
    "<": ("maximum", True),
}


def ref(name: str) -> Schema:
    """A reference to the component ``name`` of ``#/components/schemas``."""
    return {"$ref": f"#/components/schemas/{name}"}


def type_schema(
    type_: Any, nested: Callable[[type], Schema] | None = None, *, bounded: bool = True
) -> Schema:
    """The schema of one Python type; ``nested`` gives that of an attrs class (inline).

    ``bounded``: numbers get the :data:`MAX_NUMBER` range (what a request may
    carry); an answer's numbers are described without it.
    """
    nested = nested or (lambda cls: model_schema(cls, bounded=bounded))
    origin = typing.get_origin(type_)
    args = typing.get_args(type_)
    if type_ is Any:
        return {}
    if origin in (typing.Union, types.UnionType):
        members = [arg for arg in args if arg is not type(None)]
        schema = (
            type_schema(members[0], nested, bounded=bounded)
            if len(members) == 1
            else {"anyOf": [type_schema(member, nested, bounded=bounded) for member in members]}
        )
        return nullable(schema) if len(members) < len(args) else schema
    if origin is typing.Literal:
        return {"type": _json_type(args[0]), "enum": list(args)}
    if origin in (tuple, list):
        items = type_schema(args[0], nested, bounded=bounded) if args else {}
        return {"type": "array", "items": items}
    if origin is dict:
        values = type_schema(args[1], nested, bounded=bounded)
        return {"type": "object", "additionalProperties": values}
    if isinstance(type_, type) and issubclass(type_, enum.Enum):
        return {"type": "string", "enum": [member.value for member in type_]}
    if isinstance(type_, type) and attrs.has(type_):
        return nested(type_)
    if type_ is bool:
        return {"type": "boolean"}
    if type_ in (int, float):
        number: Schema = {"type": "integer" if type_ is int else "number"}
        return {**number, "minimum": -MAX_NUMBER, "maximum": MAX_NUMBER} if bounded else number
    if type_ is str:
        return {"type": "string"}
    raise TypeError(f"no OpenAPI schema for {type_!r}")


def _json_type(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number"}.get(type(value), "string")


def nullable(schema: Schema) -> Schema:
    """``schema`` or null (OpenAPI 3.0's ``nullable``; an enum also lists null)."""
    if "$ref" in schema:
        return {"allOf": [schema], "nullable": True}
    if "anyOf" in schema:  # 3.0's nullable acts beside a type: each alternative says it
        return {"anyOf": [nullable(each) for each in schema["anyOf"]], "nullable": True}
    result = {**schema, "nullable": True}
    if "enum" in result and None not in result["enum"]:
        result["enum"] = [*result["enum"], None]
    return result


def _validators(validator: Any) -> Iterable[Any]:
    """The attrs validators inside ``validator`` (``and_``, lists and ``optional`` opened)."""
    if validator is None:
        return
    names = (
        {field.name for field in attrs.fields(type(validator))}
        if attrs.has(type(validator))
        else set()
    )
    if "_validators" in names:
        for inner in validator._validators:
            yield from _validators(inner)
    elif names == {"validator"}:
        yield from _validators(validator.validator)
    else:
        yield validator


def validator_keywords(validator: Any) -> Schema:
    """The schema keywords that attrs' built-in validators in ``validator`` stand for."""
    keywords: Schema = {}
    for each in _validators(validator):
        names = {field.name for field in attrs.fields(type(each))} if attrs.has(type(each)) else ()
        if "compare_op" in names and each.compare_op in _COMPARISONS:
            keyword, exclusive = _COMPARISONS[each.compare_op]
            keywords[keyword] = each.bound
            if exclusive:
                keywords["exclusive" + keyword.capitalize()] = True
        elif "max_length" in names:
            keywords["maxLength"] = each.max_length
        elif "min_length" in names:
            keywords["minLength"] = each.min_length
        elif "match_func" in names:
            keywords["pattern"] = _ANCHORED[each.match_func.__name__].format(each.pattern.pattern)
        elif "options" in names:
            keywords["enum"] = list(each.options)
    return keywords


#: The JSON types each keyword narrows (a keyword is put on those alternatives of a union).
_NARROWS: Mapping[str, tuple[str, ...]] = {
    "minimum": ("integer", "number"),
    "maximum": ("integer", "number"),
    "exclusiveMinimum": ("integer", "number"),
    "exclusiveMaximum": ("integer", "number"),
    "minLength": ("string",),
    "maxLength": ("string",),
    "pattern": ("string",),
    "enum": ("string", "integer", "number"),
}


def _apply(schema: Schema, keywords: Schema) -> Schema:
    """``keywords`` on ``schema``, or on the alternatives of a union they narrow."""
    if "anyOf" in schema:
        return {**schema, "anyOf": [_apply(each, keywords) for each in schema["anyOf"]]}
    fitting = {
        key: value
        for key, value in keywords.items()
        if schema.get("type") in _NARROWS.get(key, (schema.get("type"),))
    }
    if "enum" in fitting and schema.get("nullable"):
        fitting["enum"] = [*fitting["enum"], None]
    return {**schema, **fitting}


Nested = Callable[[type], Schema]


def field_schema(
    field: attrs.Attribute[Any], type_: Any, nested: Nested | None = None, *, bounded: bool = True
) -> Schema:
    """One field: its type's schema, narrowed by its validators and ``metadata["openapi"]``
    (an ``enum`` there narrows like a validator's: a nullable field's also lists null)."""
    schema = type_schema(type_, nested, bounded=bounded)
    extra = dict(field.metadata.get(OPENAPI, {}))
    if "$ref" in extra:  # described by a component: 3.0 ignores the siblings of a $ref
        return extra
    narrowing = validator_keywords(field.validator)
    if "enum" in extra:
        narrowing["enum"] = extra.pop("enum")
    return {**_apply(schema, narrowing), **extra}


def properties_of(
    cls: type, nested: Nested | None = None, *, bounded: bool = True
) -> dict[str, Schema]:
    """The properties of an attrs class, by field name."""
    hints = typing.get_type_hints(cls)
    return {
        field.name: field_schema(field, hints[field.name], nested, bounded=bounded)
        for field in attrs.fields(cls)
    }


def model_schema(
    cls: type,
    *,
    nested: Nested | None = None,
    extra: bool = False,
    title: str | None = None,
    bounded: bool = True,
) -> Schema:
    """An attrs class as an object schema: fields without a default are required, unknown
    properties are refused unless ``extra``; ``title`` names it in errors ("Unknown
    routing rule field 'x'"); its docstring's first paragraph is its description."""
    properties = properties_of(cls, nested, bounded=bounded)
    schema: Schema = {"type": "object", "properties": properties}
    if title:
        schema["title"] = title
    required = [field.name for field in attrs.fields(cls) if field.default is attrs.NOTHING]
    if required:
        schema["required"] = required
    if not extra:
        schema["additionalProperties"] = False
    text = (cls.__doc__ or "").strip().split("\n\n")[0]
    if text:
        schema["description"] = " ".join(text.replace("``", "`").split())
    return schema


def nested_models(type_: Any) -> Iterable[type]:
    """The attrs classes a type names, at any depth (in lists, dicts, unions)."""
    if isinstance(type_, type) and attrs.has(type_):
        yield type_
        return
    for arg in typing.get_args(type_):
        yield from nested_models(arg)


def components(models: Iterable[type], *, extra: bool, bounded: bool) -> dict[str, Schema]:
    """``models`` and every attrs class their fields name, each a component of its class
    name, a nested one as a ``$ref`` to its own; two classes of one name are an error."""
    found: dict[str, type] = {}
    pending = list(models)
    while pending:
        cls = pending.pop(0)
        if found.get(cls.__name__) is cls:
            continue
        if cls.__name__ in found:
            raise ValueError(f"two models are named {cls.__name__!r}")
        found[cls.__name__] = cls
        hints = typing.get_type_hints(cls)
        for field in attrs.fields(cls):
            if "$ref" not in field.metadata.get(OPENAPI, {}):
                pending.extend(nested_models(hints[field.name]))
    return {
        name: model_schema(
            cls, nested=lambda inner: ref(inner.__name__), extra=extra, bounded=bounded
        )
        for name, cls in found.items()
    }
