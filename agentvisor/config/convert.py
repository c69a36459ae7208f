"""The one cattrs converter of the config (pure).

Structuring is strict: unknown keys are errors, ``true`` is not an integer,
``"8080"`` is not a port, and every problem in the file is collected. The
converter's error tree is walked (as ``cattrs.v.transform_error`` does) into
:class:`~agentvisor.errors.ConfigIssue` values whose paths are the key paths
of the file: ``agents.weather.replicas``, ``routes[0].strategy``.

Unstructuring gives plain TOML types (tables, arrays, strings, numbers,
booleans), omitting ``None`` since TOML has no null.

The small helpers for messages (``show_value``, ``did_you_mean``,
``key_path``) live here because every config stage words its issues with
them and this is the lowest module of the stages.
"""

from __future__ import annotations

import difflib
import enum
import math
import re
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import attrs
from cattrs import Converter
from cattrs.errors import (
    AttributeValidationNote,
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
)
from cattrs.gen import make_dict_structure_fn, override

from agentvisor.config.model import (
    AdminConfig,
    AgentConfig,
    AutoscaleConfig,
    ClusterConfig,
    Condition,
    Config,
    HealthConfig,
    RouteConfig,
    RouterConfig,
    SupervisorConfig,
)
from agentvisor.errors import ConfigIssue

__all__ = [
    "FromEnvironment",
    "InvalidValue",
    "converter",
    "did_you_mean",
    "key_path",
    "show_value",
    "structure_config",
    "unstructure_config",
]

_MODELS = (
    SupervisorConfig,
    AdminConfig,
    RouterConfig,
    HealthConfig,
    AutoscaleConfig,
    AgentConfig,
    Condition,
    RouteConfig,
    ClusterConfig,
    Config,
)
for _model in _MODELS:
    attrs.resolve_types(_model)

#: Fields of the models that are not TOML keys.
_NOT_KEYS: dict[type, tuple[str, ...]] = {Config: ("source", "base_dir")}

KeySegment = str | int


class FromEnvironment(str):
    """A string that ``${VAR}`` interpolation produced.

    TOML cannot type a value read from the environment, so number and boolean
    fields accept such a string when it parses (``port = "${PORT:-8100}"``).
    """

    __slots__ = ()


class InvalidValue(ValueError):
    """A value the config cannot hold; ``message`` is the sentence shown to people."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --- wording -------------------------------------------------------------------------

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def key_path(*segments: KeySegment) -> str:
    """``("routes", 1, "strategy")`` → ``routes[1].strategy``; odd keys are quoted."""
    out = ""
    for segment in segments:
        if isinstance(segment, int):
            out += f"[{segment}]"
            continue
        key = segment if _BARE_KEY.fullmatch(segment) else _quote(segment)
        out = f"{out}.{key}" if out else key
    return out


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in escaped)
    return f'"{escaped}"'


def show_value(value: object, limit: int = 60) -> str:
    """A value as TOML would spell it, for messages: ``"two"``, ``true``, ``[1, 2]``."""
    text = _spell(value)
    if len(text) > limit:
        if isinstance(value, str):
            return _quote(value[: limit - 5]) + "…"
        return "an array" if isinstance(value, list | tuple) else text[:limit] + "…"
    return text


def _spell(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_spell(item) for item in value) + "]"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, enum.Enum):
        return _spell(value.value)
    return str(value)


def did_you_mean(word: str, choices: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The closest of ``choices`` to ``word`` (case-insensitive), or ``None``."""
    by_folded = {choice.lower(): choice for choice in choices}
    matches = difflib.get_close_matches(word.lower(), list(by_folded), n=1, cutoff=cutoff)
    return by_folded[matches[0]] if matches else None


def _describe(type_: Any) -> str:
    """What a value of ``type_`` looks like to someone writing TOML."""
    if type_ is bool:
        return "true or false"
    if type_ is int:
        return "an integer"
    if type_ is float:
        return "a number"
    if type_ is str:
        return "a string"
    if isinstance(type_, type) and issubclass(type_, enum.Enum):
        return "one of: " + ", ".join(str(member.value) for member in type_)
    origin = typing.get_origin(type_)
    args = typing.get_args(type_)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            item = _describe(args[0])
            return "an array of " + item.removeprefix("an ").removeprefix("a ") + "s"
        return f"an array of {len(args)} items"
    if origin is dict or attrs.has(type_):
        return "a table"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(arm) for arm in args if arm is not type(None))
    return "a value"  # pragma: no cover - every model type is handled above


def _wrong_type(type_: Any, value: object) -> InvalidValue:
    return InvalidValue(f"must be {_describe(type_)}, got {show_value(value)}")


# --- structuring hooks ---------------------------------------------------------------


def _structure_str(value: object, _type: Any) -> str:
    if not isinstance(value, str):
        raise _wrong_type(str, value)
    return str(value)  # a plain str, also for FromEnvironment


def _structure_bool(value: object, _type: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, FromEnvironment) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise _wrong_type(bool, value)


def _structure_int(value: object, _type: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, FromEnvironment):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise _wrong_type(int, value)


def _structure_float(value: object, _type: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, FromEnvironment):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise _wrong_type(float, value)


def _structure_enum(value: object, type_: type[enum.Enum]) -> enum.Enum:
    allowed = [str(member.value) for member in type_]
    if isinstance(value, str):
        for member in type_:
            if member.value == value:
                return member
    expected = ", ".join(allowed)
    hint = did_you_mean(value, allowed) if isinstance(value, str) else None
    suffix = f'; did you mean "{hint}"?' if hint else ""
    raise InvalidValue(f"unknown value {show_value(value)} (expected one of: {expected}{suffix})")


def _plain_toml(value: Any) -> Any:
    """Any TOML value, with arrays as tuples and interpolated strings as plain str."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, list | tuple):
        return tuple(_plain_toml(item) for item in value)
    if isinstance(value, dict):
        return {str(key): _plain_toml(item) for key, item in value.items()}
    return value


def _structure_any(value: Any, _type: Any) -> Any:
    return _plain_toml(value)


def _is_tuple(type_: Any) -> bool:
    return typing.get_origin(type_) is tuple


def _is_str_dict(type_: Any) -> bool:
    return typing.get_origin(type_) is dict


def _is_union(type_: Any) -> bool:
    return typing.get_origin(type_) in (typing.Union, types.UnionType)


def _structure_items(
    items: Iterable[tuple[KeySegment, Any, Any]], whole: Any
) -> list[tuple[KeySegment, Any]]:
    """Structure each (index, value, type), collecting every failure under its index."""
    done: list[tuple[KeySegment, Any]] = []
    errors: list[Exception] = []
    for index, value, type_ in items:
        try:
            done.append((index, converter.structure(value, type_)))
        except Exception as exc:
            note = IterableValidationNote(f"Structuring @ index {index!r}", index, type_)
            exc.__notes__ = [*getattr(exc, "__notes__", []), note]
            errors.append(exc)
    if errors:
        raise IterableValidationError(f"While structuring {whole!r}", errors, whole)
    return done


def _structure_tuple(value: Any, type_: Any) -> tuple[Any, ...]:
    args = typing.get_args(type_)
    if not isinstance(value, list | tuple):
        raise _wrong_type(type_, value)
    if len(args) == 2 and args[1] is Ellipsis:
        item_types = [args[0]] * len(value)
    elif len(args) != len(value):
        raise _wrong_type(type_, value)
    else:
        item_types = list(args)
    done = _structure_items(
        ((index, item, item_types[index]) for index, item in enumerate(value)), type_
    )
    return tuple(item for _, item in done)


def _structure_dict(value: Any, type_: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _wrong_type(type_, value)
    _, value_type = typing.get_args(type_)
    done = _structure_items(((key, item, value_type) for key, item in value.items()), type_)
    return {str(key): item for key, item in done}


def _structure_union(value: Any, type_: Any) -> Any:
    arms = [arm for arm in typing.get_args(type_) if arm is not type(None)]
    if value is None and len(arms) < len(typing.get_args(type_)):
        return None
    if len(arms) == 1:
        return converter.structure(value, arms[0])
    for arm in arms:
        if _fits_shape(value, arm):
            return converter.structure(value, arm)
    raise _wrong_type(type_, value)


def _fits_shape(value: Any, type_: Any) -> bool:
    """Whether ``value`` is the kind of TOML value ``type_`` is made from."""
    if type_ is str:
        return isinstance(value, str)
    if _is_tuple(type_):
        return isinstance(value, list | tuple)
    if _is_str_dict(type_) or attrs.has(type_):
        return isinstance(value, dict)
    return True


_ATTRS_MESSAGE = re.compile(r"^'\w+' must be ([<>]=? \S+): .*$", re.DOTALL)


def _checked(
    hook: Callable[[Any, Any], Any],
    attribute: attrs.Attribute[Any],
    validator: Callable[[Any, attrs.Attribute[Any], Any], Any],
) -> Callable[[Any, Any], Any]:
    """Wrap a field's hook to run the field's validator, so each field fails on its own."""

    def structure_and_check(value: Any, type_: Any) -> Any:
        result = hook(value, type_)
        try:
            validator(None, attribute, result)
        except (TypeError, ValueError) as exc:
            text = str(exc)
            matched = _ATTRS_MESSAGE.match(text)
            if matched:
                shown = show_value(result if isinstance(value, str) else value)
                raise InvalidValue(f"must be {matched[1]}, got {shown}") from None
            raise InvalidValue(text.removeprefix(f"'{attribute.name}' ")) from None
        return result

    return structure_and_check


def _model_hook(cls: type[Any], conv: Converter) -> Callable[[Any, Any], Any]:
    overrides: dict[str, Any] = {}
    for attribute in attrs.fields(cls):
        if attribute.name in _NOT_KEYS.get(cls, ()):
            overrides[attribute.name] = override(omit=True)
            continue
        hook: Callable[[Any, Any], Any]
        hook = _structure_any if attribute.type is Any else conv.get_structure_hook(attribute.type)
        if attribute.validator is not None:
            hook = _checked(hook, attribute, attribute.validator)
        overrides[attribute.name] = override(struct_hook=hook)
    structure = make_dict_structure_fn(cls, conv, **overrides)

    def structure_table(value: Any, type_: Any) -> Any:
        if not isinstance(value, dict):
            raise _wrong_type(type_, value)
        return structure(value, type_)

    return structure_table


def _unstructure_model(instance: Any) -> dict[str, Any]:
    skip = _NOT_KEYS.get(type(instance), ())
    table: dict[str, Any] = {}
    for attribute in attrs.fields(type(instance)):
        value = getattr(instance, attribute.name)
        if attribute.name not in skip and value is not None:
            table[attribute.name] = _toml_types(value)
    return table


def _toml_types(value: Any) -> Any:
    if attrs.has(type(value)):
        return _unstructure_model(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, list | tuple):
        return [_toml_types(item) for item in value]
    if isinstance(value, dict):
        return {key: _toml_types(item) for key, item in value.items()}
    return value


def _make_converter() -> Converter:
    conv = Converter(forbid_extra_keys=True, detailed_validation=True)
    # Class hooks dispatch on the MRO; StrEnum precedes str in its members' MRO.
    conv.register_structure_hook(str, _structure_str)
    conv.register_structure_hook(bool, _structure_bool)
    conv.register_structure_hook(int, _structure_int)
    conv.register_structure_hook(float, _structure_float)
    conv.register_structure_hook(enum.Enum, _structure_enum)
    conv.register_structure_hook(enum.StrEnum, _structure_enum)
    conv.register_structure_hook_func(_is_tuple, _structure_tuple)
    conv.register_structure_hook_func(_is_str_dict, _structure_dict)
    conv.register_structure_hook_func(_is_union, _structure_union)
    conv.register_structure_hook_factory(attrs.has, _model_hook)
    conv.register_unstructure_hook_func(attrs.has, _unstructure_model)
    return conv


#: The converter of every config model. Structure with :func:`structure_config`
#: to get issues rather than cattrs' exception tree.
converter = _make_converter()


# --- the error tree → issues ---------------------------------------------------------


def structure_config(raw: dict[str, Any], source: str) -> tuple[Config | None, list[ConfigIssue]]:
    """Structure parsed TOML into a :class:`Config`, or report every problem in it."""
    try:
        config = converter.structure(raw, Config)
    except Exception as exc:
        issues = [
            ConfigIssue(path=key_path(*path), message=message, file=source)
            for path, message in _issues_of(exc, ())
        ]
        return None, issues
    return attrs.evolve(config, source=source), []


def unstructure_config(config: Config) -> dict[str, Any]:
    """The config as plain TOML types (``None`` omitted), the inverse of structuring."""
    return _unstructure_model(config)


def _issues_of(
    exc: BaseException, path: tuple[KeySegment, ...]
) -> list[tuple[tuple[KeySegment, ...], str]]:
    if isinstance(exc, ClassValidationError | IterableValidationError):
        found: list[tuple[tuple[KeySegment, ...], str]] = []
        for sub in exc.exceptions:
            found.extend(_issues_of(sub, (*path, *_note_segment(sub))))
        return found
    if isinstance(exc, ForbiddenExtraKeysError):
        return [((*path, key), _unknown_key(key, exc.cl)) for key in sorted(exc.extra_fields)]
    if isinstance(exc, InvalidValue):
        return [(path, exc.message)]
    if isinstance(exc, KeyError):
        return [(path, "is required")]
    return [(path, str(exc) or type(exc).__name__)]  # pragma: no cover - a bug, shown as is


def _note_segment(exc: BaseException) -> Sequence[KeySegment]:
    for note in getattr(exc, "__notes__", ()):
        if isinstance(note, AttributeValidationNote):
            return (note.name,)
        if isinstance(note, IterableValidationNote):
            return (note.index,)
    return ()


def _unknown_key(key: str, table: type) -> str:
    """Name the sub-table where ``key`` belongs, or suggest a close key of ``table``."""
    hint = None
    for attribute in attrs.fields(table):
        arms = typing.get_args(attribute.type) if _is_union(attribute.type) else (attribute.type,)
        for sub_table in filter(attrs.has, arms):
            if key in attrs.fields_dict(sub_table):
                hint = f"{attribute.name}.{key}"
    if hint is None:
        known = [a.name for a in attrs.fields(table) if a.name not in _NOT_KEYS.get(table, ())]
        hint = did_you_mean(key, known)
    suffix = f' (did you mean "{hint}"?)' if hint else ""
    return f"unknown key {_quote(key)}{suffix}"
