"""Exponential backoff with jitter before automatic restarts (pure)."""

from __future__ import annotations

from attrs import frozen


@frozen
class Backoff:
    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.1

    def delay(self, failures: int, rand: float) -> float:
        """Seconds to wait before the next try after ``failures`` consecutive failures.

        The first failure (a crash after a stable run, or a first failed start)
        is retried at once, so a worker that dies is replaced in milliseconds.
        From the second consecutive failure on, the delay grows from
        ``initial`` by ``factor`` up to ``maximum``; ``rand`` in [0, 1) spreads
        it by ±``jitter`` so that many failing instances do not retry in step.
        """
        if failures <= 1:
            return 0.0
        try:
            base = min(self.maximum, self.initial * self.factor ** (failures - 2))
        except OverflowError:  # factor ** n beyond a float: long past the cap
            base = self.maximum
        return max(0.0, base * (1.0 + self.jitter * (2.0 * rand - 1.0)))
