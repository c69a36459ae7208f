"""When a user message is poison: the rule the worker runtime and the supervisor share (pure).

A worker death counts against the turns it had in flight only when the
worker caused it (``agentvisor.supervise.machine.death_counts``): an external
kill or a stop agentvisor asked for is no sign of a bad message. A message
is poisoned (not run again, ``MESSAGE_POISONED``) at its ``POISON_DEATHS``-th
counted death if at least one of its counted deaths had it as its worker's
only turn, and at its ``POISON_SHARED_DEATHS``-th counted death in any case:
a death shared by several turns cannot tell the guilty one from bystanders,
so a bystander is not poisoned for following a poison message around once,
while a message that keeps killing busy workers is still contained.

The counts travel in a session's ``open_turn`` (SQLite column, Redis hash
field) as ``{"deaths": counted, "alone": alone}`` (``fields`` / ``from_fields``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attrs import frozen

from agentvisor.worker.limits import POISON_DEATHS, POISON_SHARED_DEATHS


@frozen
class Deaths:
    """The counted worker deaths a message was in flight at."""

    counted: int = 0
    alone: int = 0  # of them, deaths at which it was its worker's only turn in flight

    def after(self, *, alone: bool) -> Deaths:
        """These deaths and one more counted death."""
        return Deaths(self.counted + 1, self.alone + int(alone))

    @property
    def poisoned(self) -> bool:
        return self.counted >= POISON_SHARED_DEATHS or (
            self.counted >= POISON_DEATHS and self.alone >= 1
        )

    def fields(self) -> dict[str, int]:
        """The counts as stored beside an open turn's ``message_id``."""
        return {"deaths": self.counted, "alone": self.alone}

    @classmethod
    def from_fields(cls, value: Mapping[str, Any]) -> Deaths:
        """The counts stored by ``fields``. A record written before deaths were told
        apart (no ``alone``) counts each of its deaths as one alone."""
        counted = value.get("deaths")
        counted = counted if isinstance(counted, int) and not isinstance(counted, bool) else 0
        alone = value.get("alone", counted)
        alone = alone if isinstance(alone, int) and not isinstance(alone, bool) else 0
        return cls(max(0, counted), max(0, min(alone, counted)))


NO_DEATHS = Deaths()


def judge(
    open_message_id: object,
    deaths: Deaths,
    lost_message_id: str | None,
    *,
    counts: bool,
    alone: bool,
) -> Deaths | None:
    """A session's open turn (its ``message_id`` and counts) after the death of a worker
    that had ``lost_message_id`` of it in flight: the counts to store, this death added
    when it ``counts`` (``alone``: the worker had no other turn in flight). None when the
    open turn is another one: the session went on elsewhere, nothing of it to judge."""
    if (None if open_message_id is None else str(open_message_id)) != lost_message_id:
        return None
    return deaths.after(alone=alone) if counts else deaths
