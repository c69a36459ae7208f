"""The rules of the cluster's config edit lock and its fencing tokens (pure).

A node that edits agentvisor.toml through the API first takes the lock in
Redis: a key holding ``TOKEN FENCE NODE`` with a lease (``lock_timeout``),
set only when absent, ``FENCE`` the next value of a counter that never goes
back. Right before the file is renamed into place, the write is checked
against Redis (atomically, in one script): it goes ahead only when the lock
still holds this grant's token **and** its fence is above the last fence
that wrote, which it then becomes. So an edit that stalled past its lease
(a paused process, a slow disk) and whose lock another node took since is
refused instead of interleaving with that node's edit; and a grant is not
used once its lease has run out by this node's own clock either, with a
margin for the time the check takes.
"""

from __future__ import annotations

from attrs import frozen

#: A grant is not used for a write when less than this share of its lease is left.
LEASE_MARGIN = 0.1


@frozen
class LockValue:
    """What the lock key holds."""

    token: str
    fence: int
    node: str

    def text(self) -> str:
        return f"{self.token} {self.fence} {self.node}"

    @classmethod
    def parse(cls, text: str | None) -> LockValue | None:
        """The value in ``text``; None when there is none or it is not one."""
        if not text:
            return None
        parts = text.split(" ", 2)
        if len(parts) != 3 or not parts[1].isdigit():
            return None
        return cls(parts[0], int(parts[1]), parts[2])


@frozen
class Grant:
    """A lock this node holds: its value and, on this node's clock, when its lease ends."""

    value: LockValue
    expires_at: float

    def usable(self, now: float, lease: float) -> bool:
        """Whether a write may still be tried under this grant at ``now``."""
        return now < self.expires_at - LEASE_MARGIN * lease


def busy_message(holder: LockValue | None) -> str:
    """Why the lock could not be taken in time."""
    if holder is None:
        return "the cluster's config edit lock stayed busy; try again"
    return (
        f"node {holder.node} holds the cluster's config edit lock (fence {holder.fence}); "
        "try again once its edit is done"
    )


def refusal(grant: Grant, holder: LockValue | None, last_fence: int) -> str | None:
    """Why Redis refused a write under ``grant`` (None: it was accepted).

    ``holder`` and ``last_fence`` are what the check found in Redis.
    """
    mine = grant.value
    if holder is not None and holder.token == mine.token and mine.fence > last_fence:
        return None
    if holder is None:
        return (
            f"this edit's config lock (fence {mine.fence}) expired before the file was "
            "written; nothing was written, try again"
        )
    if holder.token != mine.token:
        return (
            f"this edit's config lock (fence {mine.fence}) expired and node {holder.node} "
            f"took it (fence {holder.fence}); nothing was written, try again"
        )
    return (
        f"a later edit (fence {last_fence}) was written before this one (fence {mine.fence}); "
        "nothing was written, try again"
    )
