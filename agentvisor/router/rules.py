"""The routing rules engine (pure): which agents may serve a client, or why none.

``[[routes]]`` are compiled once per config (regexes and networks parsed then,
not per connection); ``decide`` returns a ``Route``, ``Reject`` or ``NoRoute``
as data. Which *instance* gets the client is the strategies' job. Semantics
CONFIG.md leaves open:

- Multi-valued fields (``query.NAME`` may repeat, ``subprotocol`` is a list):
  a positive op matches when *any* value matches; ``not_equals`` and
  ``not_in`` are the exact negations of ``equals`` and ``in``, so they match
  when *no* value does.
- A missing field (absent header or query parameter, no subprotocol offered):
  ``exists`` is false, ``not_equals`` and ``not_in`` are true, every other op
  is false. A present but empty value exists.
- ``case_sensitive = false`` (the default) compares casefolded strings; for
  ``regex`` it compiles with ``re.IGNORECASE`` (casefolding a pattern would
  change its escapes). Header *names* are case-insensitive; query parameter
  names are exact, as in URLs.
- ``cidr`` matches IPv4 and IPv6 (an IPv4-mapped IPv6 address also matches
  its IPv4 networks); a value that is not an IP address never matches.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from urllib.parse import parse_qs, urlsplit

from attrs import field, frozen

from agentvisor.config.model import (
    AgentConfig,
    Condition,
    ConditionOp,
    RouteAction,
    RouteConfig,
    RouterConfig,
)
from agentvisor.config.validate import CONDITION_FIELDS, check_strategy

_HEADER_PREFIX = "x-agentvisor-"


def _lower_names(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def _value_tuples(query: Mapping[str, str | Iterable[str]]) -> dict[str, tuple[str, ...]]:
    return {k: (v,) if isinstance(v, str) else tuple(v) for k, v in query.items()}


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(value for value in values if value))


@frozen
class ClientInfo:
    """What the router knows about a client at handshake time.

    ``headers`` holds one value per lower-cased name (repeated headers joined
    with ``", "``, as HTTP allows); ``query`` keeps every value of a parameter.
    """

    ip: str
    path: str = "/"
    headers: Mapping[str, str] = field(factory=dict, converter=_lower_names)
    query: Mapping[str, tuple[str, ...]] = field(factory=dict, converter=_value_tuples)
    subprotocols: tuple[str, ...] = ()

    @classmethod
    def from_request(cls, ip: str, target: str, headers: Iterable[tuple[str, str]]) -> ClientInfo:
        """Build from a handshake: the request target (path and query) and header pairs.

        The path is kept as sent (not percent-decoded) so rules see what the
        client wrote; subprotocols come from ``Sec-WebSocket-Protocol``.
        """
        joined: dict[str, str] = {}
        for name, value in headers:
            key = name.lower()
            joined[key] = f"{joined[key]}, {value}" if key in joined else value
        parts = urlsplit(target)
        offered = joined.get("sec-websocket-protocol", "")
        return cls(
            ip=ip,
            path=parts.path or "/",
            headers=joined,
            query=parse_qs(parts.query, keep_blank_values=True),
            subprotocols=_unique(item.strip() for item in offered.split(",")),
        )

    @property
    def user_agent(self) -> str | None:
        return self.headers.get("user-agent")

    @property
    def origin(self) -> str | None:
        return self.headers.get("origin")

    def routing_input(self, name: str) -> str | None:
        """A routing input (PROTOCOL.md §2): query parameter, else ``X-Agentvisor-`` header.

        The query wins because it is what a browser client can set; empty
        values count as absent.
        """
        for value in self.query.get(name, ()):
            if value:
                return value
        header = self.headers.get(_HEADER_PREFIX + name.replace("_", "-"))
        return (header.strip() or None) if header is not None else None

    @property
    def service(self) -> str | None:
        return self.routing_input("service")

    @property
    def tags(self) -> tuple[str, ...]:
        """``tag`` query values (repeatable), else the comma-separated ``X-Agentvisor-Tag``."""
        if any(self.query.get("tag", ())):
            return _unique(self.query["tag"])
        header = self.headers.get(_HEADER_PREFIX + "tag", "")
        return _unique(item.strip() for item in header.split(","))

    @property
    def session_id(self) -> str | None:
        return self.routing_input("session_id")

    @property
    def routing_hint(self) -> str | None:
        return self.routing_input("routing_hint")


# --- conditions ----------------------------------------------------------------------

_Values = Callable[[ClientInfo], tuple[str, ...]]
_Test = Callable[[str], bool]


def _header_values(name: str) -> _Values:
    key = name.lower()
    return lambda client: (client.headers[key],) if key in client.headers else ()


_FIXED_FIELDS: dict[str, _Values] = {
    "client_ip": lambda client: (client.ip,),
    "path": lambda client: (client.path,),
    "user_agent": _header_values("user-agent"),
    "origin": _header_values("origin"),
    "subprotocol": lambda client: client.subprotocols,
}
assert set(_FIXED_FIELDS) == set(CONDITION_FIELDS), "validation and the engine disagree"


def _field_values(name: str) -> _Values:
    if name in _FIXED_FIELDS:
        return _FIXED_FIELDS[name]
    prefix, dot, rest = name.partition(".")
    if dot and rest and prefix == "header":
        return _header_values(rest)
    if dot and rest and prefix == "query":
        return lambda client: client.query.get(rest, ())
    raise ValueError(f"unknown condition field {name!r}")


def _in_networks(value: object) -> _Test:
    items = value if isinstance(value, tuple | list) else (value,)
    if not all(isinstance(item, str) for item in items):
        raise ValueError(f"cidr needs a network or a list of networks, got {value!r}")
    networks = tuple(ipaddress.ip_network(item, strict=False) for item in items)

    def test(value: str) -> bool:
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            return False
        mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
        return any(address in net or (mapped is not None and mapped in net) for net in networks)

    return test


def _string_test(op: ConditionOp, value: object, case_sensitive: bool) -> _Test:
    fold: Callable[[str], str] = str if case_sensitive else str.casefold
    if op in (ConditionOp.IN, ConditionOp.NOT_IN):
        if not isinstance(value, tuple | list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f'op "{op}" needs a list of strings, got {value!r}')
        choices = frozenset(fold(item) for item in value)
        return lambda text: fold(text) in choices
    if not isinstance(value, str):
        raise ValueError(f'op "{op}" needs a string, got {value!r}')
    if op is ConditionOp.REGEX:
        try:
            pattern = re.compile(value, 0 if case_sensitive else re.IGNORECASE)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {value!r} ({exc})") from None
        return lambda text: pattern.search(text) is not None
    target = fold(value)
    tests: dict[ConditionOp, _Test] = {  # not_equals: equals, negated by the caller
        ConditionOp.EQUALS: lambda text: fold(text) == target,
        ConditionOp.NOT_EQUALS: lambda text: fold(text) == target,
        ConditionOp.CONTAINS: lambda text: target in fold(text),
        ConditionOp.STARTS_WITH: lambda text: fold(text).startswith(target),
        ConditionOp.ENDS_WITH: lambda text: fold(text).endswith(target),
    }
    return tests[op]


@frozen(eq=False)
class CompiledCondition:
    """A condition with its field accessor, pattern or networks prepared once."""

    source: Condition
    _values: _Values
    _test: _Test | None  # None for ``exists``
    _negated: bool

    def matches(self, client: ClientInfo) -> bool:
        values = self._values(client)
        if self._test is None:
            return bool(values)
        return any(self._test(value) for value in values) != self._negated


def compile_condition(condition: Condition) -> CompiledCondition:
    """Prepare ``condition``; ``ValueError`` for what validation should have refused."""
    op = condition.op
    if op is ConditionOp.EXISTS:
        test: _Test | None = None
    elif op is ConditionOp.CIDR:
        test = _in_networks(condition.value)
    else:
        test = _string_test(op, condition.value, condition.case_sensitive)
    negated = op in (ConditionOp.NOT_EQUALS, ConditionOp.NOT_IN)
    return CompiledCondition(condition, _field_values(condition.field), test, negated)


def condition_matches(condition: Condition, client: ClientInfo) -> bool:
    """One-off check; the engine compiles each condition once instead."""
    return compile_condition(condition).matches(client)


# --- rules and decisions -------------------------------------------------------------


@frozen
class AgentInfo:
    """What the rules need of an agent; the router builds these from the live config."""

    name: str
    tags: frozenset[str] = frozenset()
    routable: bool = True
    weight: float = 1.0

    @classmethod
    def from_config(cls, name: str, agent: AgentConfig) -> AgentInfo:
        return cls(name, frozenset(agent.tags), agent.routable, agent.weight)


@frozen
class Route:
    """Send the client to one instance of ``agents`` picked by ``strategy``."""

    rule: str | None  # None: no rule matched, the router defaults applied
    agents: tuple[str, ...]
    strategy: str


@frozen
class Reject:
    """A ``reject`` rule matched: close with 1008 naming the rule."""

    rule: str
    reason: str


@frozen
class NoRoute:
    """Nothing may serve the client; ``code`` is the ``error`` event code of PROTOCOL.md."""

    reason: str
    code: str = "ROUTING_FAILED"


Decision = Route | Reject | NoRoute


@frozen(eq=False)
class CompiledRule:
    source: RouteConfig
    conditions: tuple[CompiledCondition, ...]

    @property
    def name(self) -> str:
        return self.source.name

    def matches(self, client: ClientInfo) -> bool:
        return all(condition.matches(client) for condition in self.conditions)

    def candidates(self, agents: Mapping[str, AgentInfo]) -> tuple[str, ...]:
        """Routable agents named by ``target_agents`` or having all ``target_tags``.

        Both empty means every routable agent. A non-routable agent is never a
        candidate, even when named: ``routable = false`` is the operator's veto.
        """
        rule = self.source
        wanted_tags = frozenset(rule.target_tags)
        return tuple(
            info.name
            for info in agents.values()
            if info.routable
            and (
                (not rule.target_agents and not wanted_tags)
                or info.name in rule.target_agents
                or (wanted_tags and wanted_tags <= info.tags)
            )
        )


@frozen(eq=False)
class CompiledRules:
    """``[[routes]]`` in trial order plus the ``[router]`` defaults."""

    rules: tuple[CompiledRule, ...]
    default_strategy: str = "least_connections"
    default_agent: str | None = None

    @classmethod
    def from_config(cls, routes: Iterable[RouteConfig], router: RouterConfig) -> CompiledRules:
        """Compile enabled rules, higher ``priority`` first, then in file order."""
        enabled = [route for route in routes if route.enabled]
        ordered = sorted(enabled, key=lambda route: -route.priority)  # stable: file order kept
        compiled = tuple(
            CompiledRule(route, tuple(compile_condition(c) for c in route.match))
            for route in ordered
        )
        return cls(compiled, router.default_strategy, router.default_agent)

    def first_match(self, client: ClientInfo) -> CompiledRule | None:
        return next((rule for rule in self.rules if rule.matches(client)), None)

    def decide(self, client: ClientInfo, agents: Mapping[str, AgentInfo]) -> Decision:
        """The rule's candidates, narrowed by the client's ``service`` / ``tag``.

        Without a matching rule every routable agent is allowed, and
        ``default_agent`` applies only when the client names neither service nor
        tag ("used when no rule, service or tag selects one", CONFIG.md). A
        ``routing_hint`` that is a valid strategy replaces the router default,
        never a strategy the matched rule sets itself.
        """
        rule = self.first_match(client)
        service, tags = client.service, client.tags
        if rule is not None and rule.source.action is RouteAction.REJECT:
            return Reject(rule.name, f'rejected by rule "{rule.name}"')
        if rule is not None:
            allowed = rule.candidates(agents)
            if not allowed:
                return NoRoute(f'rule "{rule.name}" selects no routable agent')
        elif self.default_agent is not None and service is None and not tags:
            default = agents.get(self.default_agent)
            if default is None or not default.routable:
                return NoRoute(f'default agent "{self.default_agent}" is not routable')
            allowed = (default.name,)
        else:
            allowed = tuple(info.name for info in agents.values() if info.routable)
            if not allowed:
                return NoRoute("no agent is routable")
        narrowed = _narrow(allowed, service, tags, agents, rule)
        if isinstance(narrowed, NoRoute):
            return narrowed
        strategy = rule.source.strategy if rule is not None else None
        hint = client.routing_hint
        if strategy is None and hint is not None and check_strategy(hint) is None:
            strategy = hint
        return Route(rule.name if rule else None, narrowed, strategy or self.default_strategy)


def _narrow(
    allowed: tuple[str, ...],
    service: str | None,
    tags: tuple[str, ...],
    agents: Mapping[str, AgentInfo],
    rule: CompiledRule | None,
) -> tuple[str, ...] | NoRoute:
    by = f' by rule "{rule.name}"' if rule is not None else ""
    if service is not None:
        if service not in agents:
            return NoRoute(f'unknown service "{service}"', "SERVICE_NOT_FOUND")
        if service not in allowed:
            state = "not routable" if not agents[service].routable else f"not allowed{by}"
            return NoRoute(f'service "{service}" is {state}', "SERVICE_NOT_FOUND")
        allowed = (service,)
    if tags:
        wanted = frozenset(tags)
        allowed = tuple(name for name in allowed if wanted <= agents[name].tags)
        if not allowed:
            shown = ", ".join(f'"{tag}"' for tag in tags)
            return NoRoute(f"no routable agent{by} has the tags {shown}", "SERVICE_NOT_FOUND")
    return allowed
