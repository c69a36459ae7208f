"""``${VAR}`` and ``${VAR:-default}`` in the string values of parsed TOML (pure).

The environment comes in as a mapping; this module never reads ``os.environ``.
Only values are expanded, never keys. ``$$`` is a literal ``$``, and a ``$``
not followed by ``{`` or ``$`` stays as it is (so ``"^/ws$"`` needs no escape).

A string that contained at least one reference comes out as a
:class:`~agentvisor.config.convert.FromEnvironment`, which number and boolean
fields accept when it parses.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from agentvisor.config.convert import FromEnvironment, KeySegment, key_path
from agentvisor.errors import ConfigIssue

__all__ = ["EnvironmentUse", "environment_use", "interpolate"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@attrs.frozen
class EnvironmentUse:
    """The variables a file references, split by whether the environment read had them."""

    set: tuple[str, ...] = ()
    unset: tuple[str, ...] = ()  # their default was used, or they are reported as issues

    def to_dict(self) -> dict[str, list[str]]:
        return {"set": list(self.set), "unset": list(self.unset)}


def environment_use(raw: Mapping[str, Any], env: Mapping[str, str]) -> EnvironmentUse:
    """Which variables the string values of ``raw`` reference, in order of first use.

    Found by expanding ``raw`` against a mapping that notes every name looked up, so
    it agrees with :func:`interpolate` on what a reference is.
    """
    recorder = _Recorder(env)
    _walk(dict(raw), (), recorder, [], "")
    names = list(recorder.names)
    return EnvironmentUse(
        tuple(name for name in names if name in env),
        tuple(name for name in names if name not in env),
    )


class _Recorder(Mapping[str, str]):
    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self.names: dict[str, None] = {}

    def __getitem__(self, name: str) -> str:
        self.names[name] = None
        return self._env[name]

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str):
            self.names[name] = None
        return name in self._env

    def get(self, name: str, default: Any = None) -> Any:
        self.names[name] = None
        return self._env.get(name, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._env)

    def __len__(self) -> int:
        return len(self._env)


def interpolate(
    raw: Mapping[str, Any], env: Mapping[str, str], source: str = ""
) -> tuple[dict[str, Any], list[ConfigIssue]]:
    """Expand references in every string value of ``raw``; report the ones that cannot be.

    A value with a problem is left as written, so later stages still see a string.
    """
    issues: list[ConfigIssue] = []
    expanded = _walk(dict(raw), (), env, issues, source)
    return expanded, issues


def _walk(
    value: Any,
    path: tuple[KeySegment, ...],
    env: Mapping[str, str],
    issues: list[ConfigIssue],
    source: str,
) -> Any:
    if isinstance(value, str):
        result, problems = expand(value, env)
        for problem in problems:
            issues.append(ConfigIssue(path=key_path(*path), message=problem, file=source))
        return result
    if isinstance(value, list):
        return [_walk(item, (*path, i), env, issues, source) for i, item in enumerate(value)]
    if isinstance(value, dict):
        return {key: _walk(item, (*path, key), env, issues, source) for key, item in value.items()}
    return value


def expand(text: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
    """``text`` with its references expanded, or as written with every problem met.

    As in POSIX shells, ``${NAME:-default}`` also takes the default when NAME is empty.
    """
    if "$" not in text:
        return text, []
    out: list[str] = []
    problems: list[str] = []
    referenced = False
    i = 0
    while i < len(text):
        char = text[i]
        if char != "$" or i + 1 == len(text) or text[i + 1] not in "${":
            out.append(char)
            i += 1
            continue
        if text[i + 1] == "$":
            out.append("$")
            i += 2
            continue
        end = text.find("}", i + 2)
        if end < 0:
            problems.append('unterminated "${" (write "$$" for a literal "$")')
            break
        reference = text[i + 2 : end]
        name, has_default, default = reference.partition(":-")
        if not _NAME.fullmatch(name):
            problems.append(
                f'invalid reference "${{{reference}}}" (expected ${{NAME}} or ${{NAME:-default}})'
            )
        elif has_default:
            out.append(env.get(name) or default)
        elif name in env:
            out.append(env[name])
        else:
            problems.append(
                f'environment variable "{name}" is not set (use ${{{name}:-default}} for a default)'
            )
        referenced = True
        i = end + 1
    if problems:
        return text, problems
    result = "".join(out)
    return (FromEnvironment(result) if referenced else result), []
