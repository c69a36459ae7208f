"""Which instance gets a client: the strategies of CONFIG.md (pure).

Randomness comes in as a ``random.Random`` so a seeded one makes every pick
reproducible; the only state is the round-robin position, kept by
:class:`Selector`. Every strategy works on the *eligible* candidates, sorted
by ``instance_id`` so that the caller's order never changes a seeded pick.

Decisions CONFIG.md leaves open:

- Affinity (the instance holding the client's ``session_id``) wins when that
  instance is healthy and not draining, *even when it is full*: the session
  already counts against its ``max_sessions``, and resuming it there adds
  nothing, whereas moving it would count it twice.
- ``least_connections`` breaks ties with the rng, so a burst of handshakes
  that have not been counted yet does not all land on the first instance.
- ``weighted_random`` never picks a weight-0 instance unless every eligible
  instance has weight 0; then they are picked uniformly.
- ``power_of_two`` takes two distinct instances at random and keeps the one
  with fewer connections (the first drawn on a tie): an instance whose load
  is strictly above every other's is never picked.
- ``ip_hash`` and ``hash:header.NAME`` / ``hash:query.NAME`` use weighted
  rendezvous (highest-random-weight) hashing with blake2b, so the mapping is
  stable across processes, adding an instance takes only the keys it now
  wins (about 1/(N+1) with equal weights) and removing one moves only its
  own keys. An absent or empty key (header, first query value) falls back to
  ``least_connections``, which the selection reports.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol, TypeVar

from attrs import frozen

from agentvisor.config.validate import check_strategy
from agentvisor.router.rules import ClientInfo

AFFINITY = "affinity"

_T = TypeVar("_T")


class Rng(Protocol):
    """What the strategies use of a ``random.Random``.

    A protocol, so that this pure module never imports ``random``, not even
    for a type (import-linter counts ``TYPE_CHECKING`` imports too).
    """

    def random(self) -> float: ...

    def choice(self, seq: Sequence[_T]) -> _T: ...

    def sample(self, population: Sequence[_T], k: int) -> list[_T]: ...


@frozen
class Candidate:
    """One instance as the router sees it at pick time."""

    instance_id: str  # "weather:0"
    agent: str
    weight: float = 1.0
    connections: int = 0
    sessions: int = 0
    max_sessions: int = 100
    healthy: bool = True
    draining: bool = False

    @property
    def accepts_sessions(self) -> bool:
        """Healthy, not draining and not full: may take a new client."""
        return self.healthy and not self.draining and self.sessions < self.max_sessions


def eligible(candidates: Iterable[Candidate]) -> tuple[Candidate, ...]:
    """The candidates a strategy may pick from, in the given order."""
    return tuple(candidate for candidate in candidates if candidate.accepts_sessions)


@frozen
class Selection:
    """The pick and what decided it: ``"affinity"``, the strategy, or its fallback."""

    candidate: Candidate
    decided_by: str


def rendezvous_score(key: str, candidate: Candidate, *, weighted: bool = True) -> float:
    """The weighted rendezvous score of ``candidate`` for ``key``; the highest wins.

    ``-weight / ln(u)`` with ``u`` a stable hash of (instance, key) in (0, 1)
    gives each instance a share of keys proportional to its weight, and each
    score depends on that instance alone: that is what keeps keys in place
    when other instances come and go.
    """
    data = f"{candidate.instance_id}\0{key}".encode("utf-8", "surrogatepass")
    bits = int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")
    unit = ((bits >> 11) | 1) / 2.0**53  # 53 random bits, never 0 nor 1
    weight = max(candidate.weight, 0.0) if weighted else 1.0
    return -weight / math.log(unit)


def rendezvous_pick(key: str, pool: Sequence[Candidate]) -> Candidate:
    """The owner of ``key`` among ``pool`` (weights ignored when they are all 0)."""
    weighted = any(candidate.weight > 0 for candidate in pool)
    return max(pool, key=lambda c: (rendezvous_score(key, c, weighted=weighted), c.instance_id))


def _hash_key(strategy: str, client: ClientInfo) -> str | None:
    if strategy == "ip_hash":
        return client.ip or None
    source, _, name = strategy.removeprefix("hash:").partition(".")
    if source == "header":
        return client.headers.get(name.lower()) or None
    return next(iter(client.query.get(name, ())), None) or None


def _least_connections(pool: Sequence[Candidate], rng: Rng) -> Candidate:
    fewest = min(candidate.connections for candidate in pool)
    return rng.choice([candidate for candidate in pool if candidate.connections == fewest])


def _power_of_two(pool: Sequence[Candidate], rng: Rng) -> Candidate:
    if len(pool) == 1:
        return pool[0]
    first, second = rng.sample(pool, 2)
    return first if first.connections <= second.connections else second


def _weighted_random(pool: Sequence[Candidate], rng: Rng) -> Candidate:
    weights = [max(candidate.weight, 0.0) for candidate in pool]
    total = math.fsum(weights)
    if not total > 0:
        return rng.choice(pool)
    point = rng.random() * total
    for candidate, weight in zip(pool, weights, strict=True):
        if weight > 0 and point < weight:
            return candidate
        point -= weight
    return next(c for c, w in zip(reversed(pool), reversed(weights), strict=True) if w > 0)


def _random(pool: Sequence[Candidate], rng: Rng) -> Candidate:
    return rng.choice(pool)


_RANDOMIZED: dict[str, Callable[[Sequence[Candidate], Rng], Candidate]] = {
    "least_connections": _least_connections,
    "power_of_two": _power_of_two,
    "weighted_random": _weighted_random,
    "random": _random,
}


class Selector:
    """Picks instances; keeps the round-robin position of each candidate set.

    A candidate set is keyed by its agents, and its position is the last
    instance id picked, so a rotation survives instances joining, leaving or
    filling up. At most ``max_rotations`` positions are kept (least recently
    used first out): the sets come from the config, but tag narrowing can
    make many.
    """

    def __init__(self, max_rotations: int = 4096) -> None:
        self._last: OrderedDict[tuple[str, ...], str] = OrderedDict()
        self._max_rotations = max_rotations

    def pick(
        self,
        strategy: str,
        candidates: Iterable[Candidate],
        client: ClientInfo,
        rng: Rng,
        affinity: str | None = None,
    ) -> Candidate | None:
        """The instance for ``client``, or ``None`` when no candidate is eligible."""
        selection = self.select(strategy, candidates, client, rng, affinity)
        return selection.candidate if selection is not None else None

    def select(
        self,
        strategy: str,
        candidates: Iterable[Candidate],
        client: ClientInfo,
        rng: Rng,
        affinity: str | None = None,
    ) -> Selection | None:
        """As :meth:`pick`, also saying what decided (for ``connection_routed``)."""
        problem = check_strategy(strategy)
        if problem is not None:
            raise ValueError(problem)
        every = tuple(candidates)
        held = next((c for c in every if c.instance_id == affinity), None)
        if held is not None and held.healthy and not held.draining:
            return Selection(held, AFFINITY)
        pool = sorted(eligible(every), key=lambda candidate: candidate.instance_id)
        if not pool:
            return None
        if strategy == "round_robin":
            return Selection(self._next_in_rotation(every, pool), strategy)
        if strategy in _RANDOMIZED:
            return Selection(_RANDOMIZED[strategy](pool, rng), strategy)
        key = _hash_key(strategy, client)
        if key is None:
            return Selection(_least_connections(pool, rng), "least_connections")
        return Selection(rendezvous_pick(key, pool), strategy)

    def _next_in_rotation(self, every: Sequence[Candidate], pool: Sequence[Candidate]) -> Candidate:
        rotation = tuple(sorted({candidate.agent for candidate in every}))
        last = self._last.get(rotation)
        chosen = pool[0]
        if last is not None:
            chosen = next((c for c in pool if c.instance_id > last), pool[0])
        self._last[rotation] = chosen.instance_id
        self._last.move_to_end(rotation)
        while len(self._last) > self._max_rotations:
            self._last.popitem(last=False)
        return chosen
