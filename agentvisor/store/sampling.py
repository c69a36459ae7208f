"""Which worker lines go into the state store under a flood (pure: ``now`` comes in).

The rotating log files keep every line; the store's full-text index costs
far more per line (the writer manages thousands of lines a second, a worker
flooding its stdout writes hundreds of thousands). So each service gets a
token bucket: on average ``rate`` lines a second into the store, bursts of
up to ``burst`` at once. A chunk that finds too few tokens keeps its newest
lines (the ones that tell why a worker is in trouble) and the rest are
counted as sampled out. One flooding service therefore never takes the
store's share of another, and the writer's work, its CPU and the growth of
``state.db`` stay bounded whatever the workers write.
"""

from __future__ import annotations

import attrs


@attrs.define
class _Bucket:
    tokens: float
    at: float


@attrs.define
class LogSampler:
    """A token bucket per service; ``admit`` says how many lines of a chunk to keep."""

    rate: float  # lines per second, per service
    burst: float  # the most lines admitted at once after a quiet spell
    sampled_out: int = 0  # lines not admitted, since the start
    _buckets: dict[str, _Bucket] = attrs.field(factory=dict, init=False)

    def __attrs_post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError(f"need rate > 0 and burst >= 1, got {self.rate}, {self.burst}")

    def admit(self, service: str, lines: int, now: float) -> int:
        """How many of the ``lines`` newest lines of a chunk of ``service`` go in (0..lines)."""
        bucket = self._buckets.get(service)
        if bucket is None:
            bucket = self._buckets[service] = _Bucket(self.burst, now)
        elapsed = max(0.0, now - bucket.at)
        bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.rate)
        bucket.at = max(bucket.at, now)
        kept = min(lines, int(bucket.tokens))
        bucket.tokens -= kept
        self.sampled_out += lines - kept
        return kept
