"""Processes that left their worker's process group: found by a tag, stopped with it (Linux).

A worker's process group reaches its grandchildren until one of them calls
``setsid()`` (a daemon's double fork). ``killpg`` then misses it: it outlives
its worker's stop, keeps the worker's stdout pipe open (so the stop never
settles), and survives a SIGKILL of agentvisor. Two things find it:

* **A tag.** Every worker's environment carries ``AGENTVISOR_SPAWN=<agentvisor
  pid>.<n>``, unique per spawn, which its descendants inherit (unless they
  clear their environment, which is the limit of this scheme).
* **Child subreaper.** While the launcher runs, agentvisor is a child
  subreaper (``PR_SET_CHILD_SUBREAPER``): a descendant whose parent dies is
  re-parented to agentvisor instead of init, so it stays in agentvisor's tree,
  and agentvisor reaps it when it exits (:meth:`Family.tend`).

:meth:`Family.strays` lists, for one spawn, the processes its group signal
misses: the live leader's subtree, and agentvisor's re-parented children
that carry the spawn's tag, with their subtrees. :meth:`Family.tend` (on
SIGCHLD) reaps exited orphans and SIGKILLs orphans whose worker is gone. The
orphan guard kills by the tag's prefix when agentvisor itself is SIGKILLed.

cgroup v2 would do this without a tag, but needs a delegated sub-tree, which
a plain service (or a container) often lacks; see docs/decisions.md.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import threading
from collections.abc import Callable, Iterable, Iterator

SPAWN_VAR = "AGENTVISOR_SPAWN"
_PR_SET_CHILD_SUBREAPER = 36


def set_subreaper(on: bool) -> bool:
    """Make this process a child subreaper (or stop being one); False if the kernel refuses."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (every thread's), from /proc; [] when it is gone."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as file:
                found.extend(int(word) for word in file.read().split())
        except OSError:
            continue
    return found


def adopted() -> list[int]:
    """This process's children listed on its main thread: where the kernel re-parents
    orphans to a subreaper (its first live thread), and where children of retired
    threads go. One read, however many threads agentvisor has."""
    pid = os.getpid()
    try:
        with open(f"/proc/{pid}/task/{pid}/children", "rb") as file:
            return [int(word) for word in file.read().split()]
    except OSError:
        return []


def subtree(pid: int) -> list[int]:
    """``pid``'s descendants (not ``pid`` itself), parents before children."""
    found, pending = [], children(pid)
    while pending:
        child = pending.pop()
        found.append(child)
        pending.extend(children(child))
    return found


def tag_of(pid: int) -> str | None:
    """The ``AGENTVISOR_SPAWN`` value in ``pid``'s environment, if it can be read."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as file:
            environ = file.read()
    except OSError:
        return None
    key = f"{SPAWN_VAR}=".encode()
    for entry in environ.split(b"\0"):
        if entry.startswith(key):
            return entry[len(key) :].decode(errors="replace")
    return None


def _stat(pid: int) -> tuple[str, int] | None:
    """State letter and process group of ``pid`` (a zombie too), or None when gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            text = file.read()
    except OSError:
        return None
    fields = text[text.rfind(b")") + 2 :].split()  # after "pid (comm) "
    return fields[0].decode(), int(fields[2])


class Family:
    """agentvisor's own children: the workers it spawned, and what is re-parented to it.

    Thread-safe. A spawn registers its leader under :meth:`spawning`, so
    :meth:`tend` never reaps a worker's exit status from under ``Popen``.
    """

    def __init__(self, others: Callable[[], Iterable[int | None]] = tuple) -> None:
        """``others``: children that are reaped elsewhere (the orphan guard)."""
        self._lock = threading.Lock()
        self._tags: dict[int, str] = {}  # live leader pid -> its spawn's tag
        self._spawning = 0
        self._count = 0
        self._others = others

    @contextlib.contextmanager
    def spawning(self) -> Iterator[str]:
        """A new spawn's tag; :meth:`add` its leader before the block ends."""
        with self._lock:
            self._spawning += 1
            self._count += 1
            tag = f"{os.getpid()}.{self._count}"
        try:
            yield tag
        finally:
            with self._lock:
                self._spawning -= 1

    def add(self, pid: int, tag: str) -> None:
        with self._lock:
            self._tags[pid] = tag

    def discard(self, pid: int) -> None:
        """The leader was reaped (by its own handle)."""
        with self._lock:
            self._tags.pop(pid, None)

    def strays(self, tag: str, leader: int | None) -> list[int]:
        """Processes of spawn ``tag`` that a signal to its group may miss."""
        found = subtree(leader) if leader is not None else []
        with self._lock:
            known = {*self._tags, *self._others()}
        for child in adopted():
            if child not in known and tag_of(child) == tag:
                found.append(child)
                found.extend(subtree(child))
        return found

    def signal_strays(self, tag: str, leader: int | None, sig: int) -> int:
        """Send ``sig`` to :meth:`strays`; how many were signalled."""
        sent = 0
        for pid in self.strays(tag, leader):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
                sent += 1
        return sent

    def tend(self) -> bool:
        """Reap exited orphans; SIGKILL orphans whose worker is gone. False: try again
        soon (a spawn was in flight, and its leader might not be registered yet)."""
        own_group = os.getpgrp()
        prefix = f"{os.getpid()}."
        with self._lock:
            if self._spawning:
                return False
            live = dict(self._tags)
            skip = {*live, *self._others()}
            for child in adopted():
                stat = None if child in skip else _stat(child)
                if stat is None or stat[1] == own_group:  # ours to leave (subprocess.run)
                    continue
                if stat[0] == "Z":
                    with contextlib.suppress(ChildProcessError):
                        os.waitpid(child, os.WNOHANG)
                    continue
                tag = tag_of(child)
                if tag is not None and tag.startswith(prefix) and tag not in live.values():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(child, signal.SIGKILL)
        return True
