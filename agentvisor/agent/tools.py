"""Tools an agent can call: ``BaseTool`` and the ``ToolResult`` it returns.

A tool is a class with a ``name``, a ``description`` and an ``async def
execute(...)``. The model sees it as an OpenAI tool definition (``schema()``);
its JSON Schema ``parameters`` are declared, or derived from the signature of
``execute`` so that a tool needs no schema written twice. Models get argument
names and types wrong, and tools raise: ``BaseTool.run`` checks the arguments
first and turns every failure into a failed ``ToolResult`` the model can read
and correct, so a bad call never ends the user's turn.
"""

from __future__ import annotations

import functools
import inspect
import json
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Union

from attrs import frozen

__all__ = ["BaseTool", "ToolResult", "derive_parameters", "json_compatible", "tool_message_content"]

_UNSET: Any = object()


@frozen(init=False)
class ToolResult:
    """What a tool call produced.

    ``ToolResult(output=...)`` and ``ToolResult(content=...)`` are the same
    thing (the seeds use both). ``success`` defaults to true unless an
    ``error`` is given, so ``ToolResult(error="no such city")`` is a failure.
    """

    output: Any
    success: bool
    error: str | None

    def __init__(
        self,
        output: Any = _UNSET,
        success: bool | None = None,
        error: str | None = None,
        *,
        content: Any = _UNSET,
    ) -> None:
        if output is not _UNSET and content is not _UNSET and output != content:
            raise ValueError("ToolResult got both output= and content=; pass one of them")
        value = output if output is not _UNSET else content
        if success is None:
            success = error is None
        self.__attrs_init__(None if value is _UNSET else value, success, error)

    @property
    def content(self) -> Any:
        """The same as ``output``, for tools written against the seeds' API."""
        return self.output


class BaseTool:
    """Base class of the tools given to ``create_react_agent``.

    Subclasses set ``name`` and ``description`` and define ``execute`` with
    keyword parameters; ``parameters`` (JSON Schema of the arguments) is
    optional: when absent it is derived from ``execute``'s signature
    (``str``, ``int``, ``float``, ``bool``, ``list``, ``dict``, ``Literal``
    and ``X | None`` annotations; parameters with defaults are optional).
    ``execute`` returns a ``ToolResult`` or any plain value, which becomes a
    successful result.
    """

    name: str = ""
    description: str = ""
    parameters: Mapping[str, Any] | None = None

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        """Do the work. ``*args, **kwargs`` here lets subclasses narrow the signature."""
        raise NotImplementedError(f"tool {self.name!r} does not define execute()")

    @functools.cached_property
    def input_schema(self) -> Mapping[str, Any]:
        """The JSON Schema of the arguments: declared, or derived from ``execute``."""
        if self.parameters is not None:
            return self.parameters
        return derive_parameters(type(self).execute)

    def schema(self) -> dict[str, Any]:
        """The OpenAI tool definition the model is given."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": dict(self.input_schema),
            },
        }

    def check_arguments(self, arguments: Mapping[str, Any]) -> str | None:
        """Why ``arguments`` cannot be passed to ``execute``, or None when they can.

        Checks what a model commonly gets wrong: a missing required key, a
        value of the wrong JSON type, a value outside an ``enum``, and keys the
        tool does not take. Nested schemas are not checked.
        """
        schema = self.input_schema
        properties: Mapping[str, Any] = schema.get("properties") or {}
        for key in schema.get("required") or ():
            if key not in arguments:
                return f"missing required argument {key!r}"
        for key, value in arguments.items():
            spec = properties.get(key)
            if spec is None:
                if not self._takes_extra_arguments(schema):
                    expected = ", ".join(properties) or "no arguments"
                    return f"unexpected argument {key!r} (expected: {expected})"
                continue
            problem = _check_value(key, value, spec)
            if problem is not None:
                return problem
        return None

    async def run(self, arguments: Mapping[str, Any]) -> ToolResult:
        """Check the arguments, call ``execute``, and never raise (except cancellation).

        Exceptions become ``ToolResult(success=False, error="Type: message")``;
        ``BaseException``s such as cancellation are not caught, so cancelling
        a turn cancels its tools.
        """
        problem = self.check_arguments(arguments)
        if problem is not None:
            return ToolResult(success=False, error=f"invalid arguments for {self.name}: {problem}")
        try:
            value = await self.execute(**_integral_floats_as_ints(arguments, self.input_schema))
        except Exception as exc:
            return ToolResult(success=False, error=f"{type(exc).__name__}: {exc}")
        if isinstance(value, ToolResult):
            return value
        return ToolResult(output=value)

    def _takes_extra_arguments(self, schema: Mapping[str, Any]) -> bool:
        if schema.get("additionalProperties") is False:
            return False
        signature = inspect.signature(self.execute)
        return any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list, tuple),
    "object": (dict, Mapping),
    "null": (type(None),),
}


def _integral_floats_as_ints(
    arguments: Mapping[str, Any], schema: Mapping[str, Any]
) -> dict[str, Any]:
    """``3.0`` for an ``integer`` argument arrives as ``3``: JSON does not tell them apart."""
    properties: Mapping[str, Any] = schema.get("properties") or {}
    fixed = dict(arguments)
    for key, value in arguments.items():
        if isinstance(value, float) and (properties.get(key) or {}).get("type") == "integer":
            fixed[key] = int(value)
    return fixed


def _json_type_name(value: Any) -> str:
    for name in ("boolean", "integer", "number", "string", "array", "object", "null"):
        if _is_json_type(value, name):
            return name
    return type(value).__name__


def _is_json_type(value: Any, type_name: str) -> bool:
    if type_name in ("integer", "number") and isinstance(value, bool):
        return False
    if type_name == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _JSON_TYPES.get(type_name, (object,)))


def _check_value(key: str, value: Any, spec: Mapping[str, Any]) -> str | None:
    declared = spec.get("type")
    if declared is not None:
        allowed = [declared] if isinstance(declared, str) else list(declared)
        if not any(_is_json_type(value, t) for t in allowed):
            wanted = " or ".join(allowed)
            return f"argument {key!r} must be {wanted}, got {_json_type_name(value)} {value!r}"
    choices = spec.get("enum")
    if choices is not None and value not in choices:
        return f"argument {key!r} must be one of {list(choices)!r}, got {value!r}"
    return None


def derive_parameters(execute: Any) -> dict[str, Any]:
    """A JSON Schema for the keyword parameters of ``execute`` (``self`` excluded).

    Annotations map to JSON types; a parameter without a default is
    required; ``*args``/``**kwargs`` are left out. The docstring is ignored:
    descriptions of parameters belong in a declared ``parameters`` schema.
    """
    try:
        hints = typing.get_type_hints(execute)
    except Exception:  # unresolvable string annotations: fall back to no types
        hints = {}
    properties: dict[str, Any] = {}
    required: list[str] = []
    params = list(inspect.signature(execute).parameters.values())
    for param in params[1:] if params and params[0].name == "self" else params:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        properties[param.name] = _annotation_schema(hints.get(param.name, param.annotation))
        if param.default is param.empty:
            required.append(param.name)
    return {"type": "object", "properties": properties, "required": required}


_SCALARS: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _annotation_schema(annotation: Any) -> dict[str, Any]:
    if annotation in _SCALARS:
        return {"type": _SCALARS[annotation]}
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        return _annotation_schema(rest[0]) if len(rest) == 1 else {}
    if origin is Literal:
        schema: dict[str, Any] = {"enum": list(args)}
        kinds = {_SCALARS.get(type(a)) for a in args}
        if len(kinds) == 1 and None not in kinds:
            schema["type"] = kinds.pop()
        return schema
    if annotation in (list, tuple) or origin in (list, tuple):
        items = _annotation_schema(args[0]) if args else {}
        return {"type": "array", "items": items} if items else {"type": "array"}
    if annotation is dict or origin is dict:
        return {"type": "object"}
    return {}


def json_compatible(value: Any) -> Any:
    """``value`` if it serialises to JSON as it is, else its ``str()``.

    Tool outputs travel to the client as JSON (``agent.tool_result``) and into
    the session store; a tool returning an arbitrary object must not break
    either.
    """
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
    return value


def tool_message_content(result: ToolResult) -> str:
    """The ``content`` of the ``tool`` message that tells the model what a call returned.

    Text stays text; other outputs are JSON; failures read ``Error: ...``, so
    the model can tell a failed call from an output that mentions an error.
    """
    if not result.success:
        return f"Error: {result.error or 'the tool failed without saying why'}"
    if isinstance(result.output, str):
        return result.output
    return json.dumps(json_compatible(result.output), ensure_ascii=False)
