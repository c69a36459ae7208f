"""Scale from zero: hold a client's handshake while an autoscaled agent starts a replica.

When every agent a client may go to is autoscaled and none has a replica
that takes sessions (``min = 0`` and the agent scaled to zero, or its
replicas still starting), the router keeps the client's upgrade request
open, counts it as waiting (the autoscaler's cold-start signal) and wakes
the autoscaler. As soon as an instance accepts sessions the handshake
goes on as usual; after ``autoscale.cold_start_wait`` seconds the client
gets HTTP 503 with the reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection

import trio

from agentvisor.events import EventBus
from agentvisor.router.routing import Routing

#: How often the wait re-reads the endpoints when no event woke it.
POLL_INTERVAL = 0.2


def _nothing() -> None:
    return None


class ColdStart:
    def __init__(self, routing: Routing, bus: EventBus, draining: Collection[str]) -> None:
        self._routing = routing
        self._bus = bus
        self._draining = draining
        self.waiting: Counter[str] = Counter()  # agent → clients held now
        self.on_wait: Callable[[], None] = _nothing  # the daemon wires the autoscaler's wake

    def hold_for(self, agents: Collection[str]) -> float:
        """How long a client for ``agents`` may wait: 0 unless all of them are autoscaled."""
        configs = [self._routing.config.agents.get(name) for name in agents]
        scales = [c.autoscale for c in configs if c is not None]
        if not scales or len(scales) != len(agents) or any(s is None for s in scales):
            return 0.0
        return max(s.cold_start_wait for s in scales if s is not None)

    def ready(self, agents: Collection[str]) -> bool:
        candidates = self._routing.candidates(agents, self._draining)
        return any(candidate.accepts_sessions for candidate in candidates)

    async def wait(self, agents: Collection[str]) -> str | None:
        """None once an instance of ``agents`` takes sessions; else why not (after the wait)."""
        hold = self.hold_for(agents)
        if hold <= 0 or self.ready(agents):
            return None
        deadline = trio.current_time() + hold
        for name in agents:
            self.waiting[name] += 1
        try:
            self.on_wait()
            async with self._bus.subscribe(capacity=16) as events:
                while trio.current_time() < deadline:
                    if self.ready(agents):
                        return None
                    with trio.move_on_at(min(deadline, trio.current_time() + POLL_INTERVAL)):
                        await events.receive()
            if self.ready(agents):
                return None
        finally:
            for name in agents:
                self.waiting[name] -= 1
                if self.waiting[name] <= 0:
                    del self.waiting[name]
        names = ", ".join(agents)
        return (
            f"no replica of {names} became ready within {hold:g}s "
            "(scaled to zero; autoscale.cold_start_wait)"
        )
