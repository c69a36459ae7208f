"""The pure routing core fed with live data: the running config and the supervisor's endpoints.

Rules are compiled again whenever the supervisor's config object changes (a
reload replaces it), so routes and router settings apply without a restart.
Candidates are built per decision from ``Supervisor.endpoints()`` plus the
router's own connection counts and drains, then handed to the strategies.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Iterable
from typing import Any, Protocol

from attrs import frozen

from agentvisor.config.model import Config
from agentvisor.router.handshake import UpgradeRequest
from agentvisor.router.limits import ConnectionLimits
from agentvisor.router.rules import (
    AgentInfo,
    ClientInfo,
    CompiledRules,
    Decision,
    NoRoute,
    Reject,
    Route,
)
from agentvisor.router.strategies import Candidate, Selection, Selector
from agentvisor.router.table import ConnectionTable
from agentvisor.supervise.registry import Endpoint


class EndpointSource(Protocol):
    """What the router needs of the supervisor (a fake in unit tests, the cluster's view)."""

    @property
    def config(self) -> Config: ...

    def endpoints(self) -> list[Endpoint]: ...


@frozen
class Plan:
    """How a connection was routed; failover keeps to it (same agents, same strategy)."""

    rule: str | None
    agents: tuple[str, ...]
    strategy: str
    wrap: bool
    client: ClientInfo
    request: UpgradeRequest
    #: Every agent of the plan is an ``agent =`` worker (PROTOCOL.md): the router may add
    #: a ``message_id`` to its ``user.message`` frames. Other frames reach a command worker
    #: as the client sent them.
    agent_protocol: bool = False

    @property
    def route_label(self) -> str:
        """``X-Agentvisor-Route``: the rule's name, or ``default``."""
        return self.rule if self.rule is not None else "default"


def endpoint_url(endpoint: Endpoint) -> str:
    host = f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host
    return f"ws://{host}:{endpoint.port}{endpoint.ws_path}"


class Routing:
    """Rules, limits and strategies over the live config, recompiled when it changes."""

    def __init__(self, source: EndpointSource, table: ConnectionTable, rng: random.Random) -> None:
        self.source = source
        self.table = table
        self.rng = rng
        self.selector = Selector()
        config = source.config
        self.limits = ConnectionLimits.from_config(config.router)
        self._config = config
        self._rules = CompiledRules.from_config(config.routes, config.router)
        self._agents = self._agent_infos(config)

    @property
    def config(self) -> Config:
        """The running config; rules and limits follow it when a reload replaced it."""
        config = self.source.config
        if config is not self._config:
            self._rules = CompiledRules.from_config(config.routes, config.router)
            self._agents = self._agent_infos(config)
            self.limits.reconfigure(config.router)
            self._config = config
        return config

    @staticmethod
    def _agent_infos(config: Config) -> dict[str, AgentInfo]:
        return {name: AgentInfo.from_config(name, agent) for name, agent in config.agents.items()}

    def decide(self, client: ClientInfo) -> Decision:
        self.config  # noqa: B018 -- refreshes the compiled rules when the config changed
        return self._rules.decide(client, self._agents)

    def wraps(self, rule: str | None) -> bool:
        if rule is None:
            return False
        return any(route.name == rule and route.wrap_messages for route in self.config.routes)

    def router_notices(self, agents: Iterable[str]) -> bool:
        """Every agent of the route opted in to the router's notices and failover."""
        configured = self.config.agents
        return all(name in configured and configured[name].router_notices for name in agents)

    def speaks_agent_protocol(self, agents: Iterable[str]) -> bool:
        configured = self.config.agents
        return all(name in configured and configured[name].agent is not None for name in agents)

    def candidates(self, agents: Iterable[str], draining: Collection[str]) -> list[Candidate]:
        """Every instance of ``agents`` with its load; the strategies filter eligibility."""
        wanted = set(agents)
        return [
            Candidate(
                instance_id=endpoint.instance_id,
                agent=endpoint.service,
                weight=endpoint.weight,
                connections=self.table.connections_of(endpoint.instance_id),
                sessions=endpoint.sessions,
                max_sessions=endpoint.max_sessions,
                healthy=endpoint.routable,
                draining=endpoint.draining or endpoint.instance_id in draining,
            )
            for endpoint in self.source.endpoints()
            if endpoint.service in wanted
        ]

    def endpoint(self, instance_id: str) -> Endpoint | None:
        return next((e for e in self.source.endpoints() if e.instance_id == instance_id), None)

    def select(
        self,
        route: Route,
        client: ClientInfo,
        candidates: Iterable[Candidate],
        *,
        affinity: str | None = None,
        selector: Selector | None = None,
        rng: random.Random | None = None,
    ) -> Selection | None:
        chooser = selector if selector is not None else self.selector
        return chooser.select(route.strategy, candidates, client, rng or self.rng, affinity)

    def affinity(self, client: ClientInfo) -> str | None:
        """The instance holding the client's ``session_id``, when the router has learned it."""
        session_id = client.session_id
        return self.table.instance_of_session(session_id) if session_id else None

    def dry_run(self, client: ClientInfo, draining: Collection[str]) -> dict[str, Any]:
        """``POST /api/v1/routing/test``: what would happen to ``client``; changes nothing.

        A fresh selector and rng stand in for the live ones, so the round-robin
        position and the random sequence of real traffic are left alone.
        """
        decision = self.decide(client)
        result: dict[str, Any] = {
            "client": {
                "ip": client.ip,
                "path": client.path,
                "service": client.service,
                "tags": list(client.tags),
                "session_id": client.session_id,
                "routing_hint": client.routing_hint,
            }
        }
        if not isinstance(decision, Route):
            rejected = isinstance(decision, Reject)
            result.update(
                action="reject" if rejected else "no_route",
                rule=decision.rule if isinstance(decision, Reject) else None,
                reason=decision.reason,
                code=decision.code if isinstance(decision, NoRoute) else None,
                agents=[],
                strategy=None,
                instance=None,
                candidates=[],
            )
            return result
        candidates = self.candidates(decision.agents, draining)
        affinity = self.affinity(client)
        selection = self.select(
            decision,
            client,
            candidates,
            affinity=affinity,
            selector=Selector(),
            rng=random.Random(),
        )
        instance: dict[str, Any] | None = None
        if selection is not None:
            endpoint = self.endpoint(selection.candidate.instance_id)
            instance = {
                "instance_id": selection.candidate.instance_id,
                "service": selection.candidate.agent,
                "endpoint": endpoint_url(endpoint) if endpoint is not None else None,
                "decided_by": selection.decided_by,
            }
        result.update(
            action="route",
            rule=decision.rule,
            reason=None if selection else "no healthy instance of the selected agents",
            code=None if selection else "NO_HEALTHY_SERVICE",
            agents=list(decision.agents),
            strategy=decision.strategy,
            instance=instance,
            candidates=[
                {
                    "instance_id": c.instance_id,
                    "service": c.agent,
                    "eligible": c.accepts_sessions,
                    "healthy": c.healthy,
                    "draining": c.draining,
                    "connections": c.connections,
                    "sessions": c.sessions,
                    "max_sessions": c.max_sessions,
                }
                for c in sorted(candidates, key=lambda c: c.instance_id)
            ],
        )
        return result
