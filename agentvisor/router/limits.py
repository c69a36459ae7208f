"""Connection admission: total cap, per-IP cap, per-IP connect rate (pure).

Time comes in as ``now`` (seconds on any monotonic clock), so the limits are
tested without sleeping. Refusals carry the close code of PROTOCOL.md: 1013
(at capacity, try again later) beyond ``max_connections``, 1008 (policy) for
the per-IP cap and the connect rate.

Memory stays bounded under a flood from many addresses: an IP's counter lives
only while it has open connections (at most ``max_connections`` of them), and
its token bucket only until the bucket would be full again, which takes at
most ``burst / rate`` seconds (2 s with the default ``burst = 2 * rate``): a
full bucket behaves exactly like a fresh one, so forgetting it changes
nothing. Buckets are therefore at most the addresses that tried in the last
``burst / rate`` seconds, and never more than ``max_tracked_ips``; beyond
that the least recently used is dropped, which gives that address a fresh
burst: a small leniency, only under an extreme flood.
"""

from __future__ import annotations

from collections import OrderedDict

import attrs
from attrs import define, frozen
from attrs.validators import gt

from agentvisor.config.model import RouterConfig

CLOSE_POLICY = 1008
CLOSE_TRY_AGAIN = 1013


@define
class TokenBucket:
    """``burst`` tokens, refilled at ``rate`` per second; starts full."""

    rate: float = attrs.field(validator=gt(0.0))
    burst: float = attrs.field(validator=gt(0.0))
    tokens: float = attrs.field(default=attrs.Factory(lambda self: self.burst, takes_self=True))
    updated: float | None = None  # the ``now`` of the last refill; None: never used

    def refill(self, now: float) -> None:
        """Add what ``rate`` gave since the last refill (a clock going back gives nothing)."""
        if self.updated is not None and now > self.updated:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        if self.updated is None or now > self.updated:
            self.updated = now

    def take(self, now: float) -> bool:
        """Spend one token if there is one."""
        self.refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def full_at(self) -> float:
        """The ``now`` from which the bucket is full again (and may be forgotten)."""
        last = self.updated if self.updated is not None else float("-inf")
        return last + (self.burst - self.tokens) / self.rate


@frozen
class Admission:
    """Whether a new client may connect; when not, how to close and why."""

    admitted: bool
    close_code: int | None = None
    reason: str = ""


ADMITTED = Admission(True)


class ConnectionLimits:
    """Counts open connections per IP and rate-limits new ones.

    The checks run cheapest and most global first: total cap, per-IP cap,
    then the rate; a refusal by a cap spends no token. Call :meth:`release`
    once for every admitted connection when it closes.
    """

    def __init__(
        self,
        max_connections: int,
        max_per_ip: int,
        connect_rate_per_ip: float,
        *,
        max_tracked_ips: int = 65536,
    ) -> None:
        self.max_connections = max_connections
        self.max_per_ip = max_per_ip
        self.connect_rate_per_ip = connect_rate_per_ip
        self.max_tracked_ips = max_tracked_ips
        self._open: dict[str, int] = {}
        self._total = 0
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    @classmethod
    def from_config(cls, router: RouterConfig) -> ConnectionLimits:
        return cls(
            router.max_connections, router.max_connections_per_ip, router.connect_rate_per_ip
        )

    def reconfigure(self, router: RouterConfig) -> None:
        """Apply reloaded limits live; open connections are kept and counted."""
        self.max_connections = router.max_connections
        self.max_per_ip = router.max_connections_per_ip
        if router.connect_rate_per_ip != self.connect_rate_per_ip:
            self.connect_rate_per_ip = router.connect_rate_per_ip
            self._buckets.clear()  # fresh buckets are full: lenient for one burst

    @property
    def burst(self) -> float:
        """``2 * rate`` (CONFIG.md), but at least one so a slow rate still admits."""
        return max(1.0, 2.0 * self.connect_rate_per_ip)

    @property
    def total(self) -> int:
        return self._total

    def open_from(self, ip: str) -> int:
        return self._open.get(ip, 0)

    def tracked_ips(self) -> int:
        """Token buckets held now (for the memory bound's tests and metrics)."""
        return len(self._buckets)

    def admit(self, ip: str, now: float) -> Admission:
        """Count a new connection from ``ip`` if the limits allow it."""
        self._forget_full_buckets(now)
        if self._total >= self.max_connections:
            reason = f"at capacity ({self.max_connections} connections)"
            return Admission(False, CLOSE_TRY_AGAIN, reason)
        if self._open.get(ip, 0) >= self.max_per_ip:
            reason = f"too many connections from {ip} (max {self.max_per_ip})"
            return Admission(False, CLOSE_POLICY, reason)
        bucket = self._buckets.pop(ip, None)
        if bucket is None:
            bucket = TokenBucket(self.connect_rate_per_ip, self.burst)
        allowed = bucket.take(now)
        self._buckets[ip] = bucket  # most recently used last
        while len(self._buckets) > self.max_tracked_ips:
            self._buckets.popitem(last=False)
        if not allowed:
            reason = f"too many new connections from {ip} (max {self.connect_rate_per_ip:g}/s)"
            return Admission(False, CLOSE_POLICY, reason)
        self._open[ip] = self._open.get(ip, 0) + 1
        self._total += 1
        return ADMITTED

    def release(self, ip: str) -> None:
        """An admitted connection from ``ip`` closed; an extra release is ignored."""
        count = self._open.get(ip, 0)
        if count <= 0:
            return
        if count == 1:
            del self._open[ip]
        else:
            self._open[ip] = count - 1
        self._total -= 1

    def _forget_full_buckets(self, now: float) -> None:
        # Least recently used first: once one is not full yet, the later ones
        # (touched later, refilling at the same rate) are usually not either;
        # stopping there keeps admit O(1) amortized.
        while self._buckets:
            oldest = next(iter(self._buckets.values()))
            if oldest.full_at() > now:
                break
            self._buckets.popitem(last=False)
