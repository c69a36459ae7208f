"""The offline model's rules: which tool a message asks for, and with what arguments.

Pure text matching, so it is deterministic and explainable; it is no language
model and does not pretend to be one. The rules, in order:

1. **Trigger.** A tool is wanted when one of its trigger words occurs in the
   user's message (case-insensitive; whole words for Latin letters and
   digits, plain substrings otherwise, so ``天气`` matches inside a Chinese
   sentence). Trigger words are the tool's name, the words of its name
   (``get_weather`` → ``weather``; generic verbs such as ``get`` or ``run``
   are skipped), and any words given to ``ScriptedLLM(triggers=...)``. A tool
   is also wanted, without a trigger word, when every required argument is
   found through a hint in its schema (rule 2a/2b) — a city name listed in
   ``examples``, an arithmetic expression matching ``pattern`` — but only
   when no tool at all was named by a trigger word.
2. **Arguments**, per property of the tool's JSON Schema, first rule that
   applies:

   a. ``enum`` / ``examples``: the listed values that occur in the message, in
      the order they occur (an ``enum`` value must be found; ``examples`` are
      only hints, so rule 2d may still apply);
   b. ``pattern``: the first match of the regular expression in the message;
   c. ``integer`` / ``number``: the numbers of the message, in order, one per
      numeric property;
   d. the first other ``string`` property: the text after the trigger word
      (the whole message if none), without leading and trailing filler words
      (``in``, ``for``, ``about``, ``please``…) and punctuation.

   Booleans, arrays and objects are never guessed. A tool whose required
   arguments are not all found is not called; the reply says what is missing.
3. **Fan-out.** When rule 2a finds several values for one property (``weather
   in Paris and Tokyo``), the tool is called once per value (at most
   ``MAX_FAN_OUT``), and the calls run concurrently.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from attrs import frozen

from agentvisor.agent.llm.base import ToolDefinition, ToolRequest

MAX_FAN_OUT = 5

GENERIC_NAME_WORDS = frozenset(
    {"get", "set", "fetch", "run", "do", "make", "tool", "call", "use", "the", "my", "api"}
)
FILLER_WORDS = frozenset(
    {"a", "about", "at", "for", "in", "is", "like", "me", "of", "on", "please", "the", "to"}
)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
# ASCII and CJK (full-width) punctuation, written as escapes for the linter's sake.
_STRIP_CHARS = " \t\r\n:,;.!?\"'`()[]{}-\uff0c\u3002\uff01\uff1f\uff1a\uff1b\u3001"


@frozen
class Plan:
    """What the message asks for: tool calls, or why none could be made."""

    requests: tuple[ToolRequest, ...] = ()
    missing: tuple[str, ...] = ()  # "get_weather needs 'city'", one per wanted tool left out


def plan_tool_calls(
    message: str,
    tools: Sequence[ToolDefinition],
    triggers: Mapping[str, Sequence[str]] | None = None,
) -> Plan:
    """Apply the module's rules to ``message`` for each tool, in the order given.

    Tools wanted through hints alone are only considered when no tool is
    named by a trigger word: "weather in Paris" asks for the weather tool,
    not for every tool that knows Paris.
    """
    by_word: list[tuple[str, dict[str, Any], list[str], tuple[str, list[Any]] | None]] = []
    by_hint: list[tuple[str, dict[str, Any], list[str], tuple[str, list[Any]] | None]] = []
    for tool in tools:
        function: Mapping[str, Any] = tool.get("function") or {}
        name = str(function.get("name", ""))
        schema: Mapping[str, Any] = function.get("parameters") or {}
        trigger_end = _first_trigger_end(
            message, trigger_words(name, (triggers or {}).get(name, ()))
        )
        found, hinted, fan = _find_arguments(message, schema, trigger_end)
        required = _required(schema)
        lacking = [k for k in required if k not in found]
        if trigger_end is not None:
            by_word.append((name, found, lacking, fan))
        elif required and set(required) <= hinted:
            by_hint.append((name, found, lacking, fan))
    requests: list[ToolRequest] = []
    missing: list[str] = []
    for name, found, lacking, fan in by_word or by_hint:
        if lacking:
            missing.append(f"{name} needs {', '.join(repr(k) for k in lacking)}")
        elif fan is None:
            requests.append(ToolRequest(name=name, arguments=found))
        else:
            key, values = fan
            requests.extend(
                ToolRequest(name=name, arguments={**found, key: v}) for v in values[:MAX_FAN_OUT]
            )
    return Plan(tuple(requests), tuple(missing))


def trigger_words(name: str, extra: Sequence[str] = ()) -> list[str]:
    """The words that make a tool wanted: its name, its name's words, and ``extra``."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    parts = [p.lower() for p in re.split(r"[\s_\-.]+", spaced) if p]
    words = [name, *extra, *(p for p in parts if len(p) >= 3 and p not in GENERIC_NAME_WORDS)]
    return [w for w in dict.fromkeys(words) if w]


def find_term(message: str, term: str) -> re.Match[str] | None:
    """``term`` in ``message``, case-insensitively; whole words when it starts/ends with one."""
    before = r"(?<![A-Za-z0-9])" if term[:1].isascii() and term[:1].isalnum() else ""
    after = r"(?![A-Za-z0-9])" if term[-1:].isascii() and term[-1:].isalnum() else ""
    return re.search(before + re.escape(term) + after, message, re.IGNORECASE)


def _first_trigger_end(message: str, words: Sequence[str]) -> int | None:
    matches = [m for m in (find_term(message, w) for w in words) if m is not None]
    if not matches:
        return None
    first = min(matches, key=lambda m: (m.start(), -m.end()))
    return first.end()


def _required(schema: Mapping[str, Any]) -> list[str]:
    return [str(k) for k in schema.get("required") or ()]


def _find_arguments(
    message: str, schema: Mapping[str, Any], trigger_end: int | None
) -> tuple[dict[str, Any], set[str], tuple[str, list[Any]] | None]:
    """Arguments found, the keys found through hints (2a/2b), and the fan-out property.

    Without a trigger word there is no "text after the trigger", so rule 2d
    does not apply.
    """
    properties: Mapping[str, Any] = schema.get("properties") or {}
    numbers = [_to_number(m.group()) for m in _NUMBER.finditer(message)]
    free_text_used = trigger_end is None
    found: dict[str, Any] = {}
    hinted: set[str] = set()
    fan: tuple[str, list[Any]] | None = None
    for key, spec in properties.items():
        spec = spec or {}
        kind = spec.get("type")
        listed = spec.get("enum", spec.get("examples"))
        if listed is not None:
            values = _listed_values(message, listed)
            if values:
                found[key] = values[0]
                hinted.add(key)
                if len(values) > 1 and fan is None:
                    fan = (key, values)
                continue
            if "enum" in spec:
                continue
        if "pattern" in spec:
            value = _pattern_match(message, str(spec["pattern"]))
            if value:
                found[key] = value
                hinted.add(key)
            continue
        if kind in ("integer", "number"):
            candidates = [n for n in numbers if kind == "number" or isinstance(n, int)]
            if candidates:
                found[key] = candidates[0]
                numbers.remove(candidates[0])
            continue
        if kind == "string" and not free_text_used:
            free_text_used = True
            text = _free_text(message[trigger_end:])
            if text:
                found[key] = text
    return found, hinted, fan


def _pattern_match(message: str, pattern: str) -> str:
    try:
        match = re.search(pattern, message)
    except re.error:
        return ""  # a pattern Python cannot read is no hint
    return match.group().strip() if match else ""


def _listed_values(message: str, listed: Sequence[Any]) -> list[Any]:
    hits: list[tuple[int, int, Any]] = []
    for position, value in enumerate(listed):
        match = find_term(message, str(value))
        if match is not None and str(value):
            hits.append((match.start(), position, value))
    hits.sort(key=lambda hit: (hit[0], hit[1]))
    values: list[Any] = []
    taken: list[tuple[int, int]] = []
    for start, _, value in hits:
        end = start + len(str(value))
        if any(start < t_end and t_start < end for t_start, t_end in taken):
            continue  # "New York" already found; do not also report "York"
        taken.append((start, end))
        values.append(value)
    return values


def _to_number(text: str) -> int | float:
    return float(text) if "." in text else int(text)


def _free_text(text: str) -> str:
    words = text.strip(_STRIP_CHARS).split()
    while words and words[0].lower().strip(_STRIP_CHARS) in FILLER_WORDS:
        words.pop(0)
    while words and words[-1].lower().strip(_STRIP_CHARS) in FILLER_WORDS:
        words.pop()
    return " ".join(words).strip(_STRIP_CHARS)
