"""The orphan guard: kills agentvisor's worker groups once agentvisor is gone.

agentvisor starts this file as a program once, at ``open_launcher()``
(``python -I -S guard.py``), in a session of its own, with a pipe from
agentvisor on its stdin. Over that pipe :class:`GuardLink` announces each
worker's process group: ``+PGID`` once the worker is spawned, ``-PGID`` once
the group is gone (or was SIGKILLed). When the pipe reaches end-of-file,
agentvisor has exited or was SIGKILLed (the kernel closes the write end
either way), so the guard SIGKILLs every group it still knows and exits. A
normal shutdown stops every worker first, and the guard finds nothing to kill.

Why a process and not ``PR_SET_PDEATHSIG``: that needs a ``preexec_fn``,
which makes CPython fork the whole daemon instead of vforking (0.5-2.5 ms a
spawn becomes ~10 ms), and it reaches only the direct child. A group kill
reaches the worker's grandchildren as well. A descendant that left its
group (``setsid``) is found by the spawn tag in its environment
(``AGENTVISOR_SPAWN=<agentvisor pid>.<n>``, see ``strays.py``): the guard
SIGKILLs every process whose environment names agentvisor's pid so.

Why it looks like this:

* Nothing outside the stdlib, and little of it (``os``, ``signal``, ``sys``,
  ``threading``, ``collections.abc``): the guard runs this file with ``-S``,
  without site packages. It starts in milliseconds and stays at 10 MiB RSS,
  4 MiB of it private (the rest is libpython and the stdlib, shared).
  agentvisor's end, :class:`GuardLink`, lives here under the same rule; the
  trio side is in ``process.py``.
* SIGINT, SIGTERM and SIGHUP are ignored and the session is its own, so a
  Ctrl-C in agentvisor's terminal, or ``systemctl stop`` signalling the whole
  control group, leaves the guard alone until agentvisor is really gone.
* Counts, not a set: pids are reused, and if a new worker ever got the pgid
  of one whose ``-`` is still on its way, ``+X +X -X`` must leave X guarded.
* It kills first and reports afterwards, on stderr (agentvisor's, inherited):
  that stderr may be a pipe nobody reads any more.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable

_READ_BYTES = 65536


def track(groups: dict[int, int], data: bytes) -> None:
    """Apply whole ``+PGID`` / ``-PGID`` lines to ``groups`` (pgid → count).

    Anything else is ignored, and so is a pgid below 2: ``killpg(0)`` would
    be the guard's own group and 1 is init's.
    """
    for line in data.split(b"\n"):
        sign, digits = line[:1], line[1:]
        if sign not in (b"+", b"-") or not digits.isdigit() or int(digits) < 2:
            continue
        pgid = int(digits)
        count = groups.get(pgid, 0) + (1 if sign == b"+" else -1)
        if count > 0:
            groups[pgid] = count
        else:
            groups.pop(pgid, None)


def kill_tagged(owner: int, killed_groups: set[int], kill: Callable[[int], None]) -> list[int]:
    """``kill`` every process outside ``killed_groups`` whose environment carries a spawn
    tag of agentvisor ``owner``."""
    tag = f"\0AGENTVISOR_SPAWN={owner}.".encode()
    killed = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as file:
                environ = b"\0" + file.read()
            if tag in environ and os.getpgid(int(entry)) not in killed_groups:
                kill(int(entry))
                killed.append(int(entry))
        except OSError:  # gone, or not ours to read or signal
            continue
    return killed


def serve(read: Callable[[int], bytes], kill: Callable[[int], None]) -> list[int]:
    """Track groups until ``read`` returns EOF, then ``kill`` each; return those killed.

    A group that is gone already (ESRCH) or not ours to signal is skipped.
    """
    groups: dict[int, int] = {}
    pending = b""
    while chunk := read(_READ_BYTES):
        complete, _, pending = (pending + chunk).rpartition(b"\n")
        track(groups, complete)
    killed = []
    for pgid in sorted(groups):
        try:
            kill(pgid)
        except OSError:
            continue
        killed.append(pgid)
    return killed


#: What a terminal or an init system sends a process group; the guard outlives them.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def main() -> None:
    """The guard program: ``python -I -S guard.py``, stdin = agentvisor's pipe."""
    os.chdir("/")  # hold no mount busy
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # nor what agentvisor let it inherit
    # Spawned with these blocked (a Ctrl-C in its first milliseconds stays pending):
    # ignore them, then unblock, which discards whatever is pending.
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    owner = os.getppid()  # agentvisor, which spawned the guard
    killed = serve(lambda size: os.read(0, size), lambda pgid: os.killpg(pgid, signal.SIGKILL))
    strays = kill_tagged(owner, set(killed), lambda pid: os.kill(pid, signal.SIGKILL))
    if killed or strays:
        groups = " ".join(map(str, killed)) or "none"
        others = f"; {len(strays)} processes by their spawn tag" if strays else ""
        message = (
            f"agentvisor guard: agentvisor is gone; SIGKILLed process groups {groups}{others}\n"
        )
        try:
            os.write(2, message.encode())
        except OSError:
            pass


class GuardLink:
    """agentvisor's end of the guard: starts it, and announces groups to it.

    ``add`` and ``discard`` may run on any thread. They update the live
    groups and write to the pipe under one lock, so a guard (re)started with
    a snapshot of the live groups misses none and gets no stale ``-``. While
    no guard runs (it died and is being replaced) they only update the
    groups. Waiting for the guard to exit is the caller's business (through
    :attr:`pidfd`); :meth:`reap` then collects it.

    The write end is O_CLOEXEC and the guard is spawned with no other fd than
    the three standard ones, so neither the guard nor a worker holds a copy
    of it: end-of-file means agentvisor is gone.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[int, int] = {}
        self._write_fd: int | None = None
        self.pid: int | None = None  # the running guard's, None when there is none
        self.pidfd: int | None = None  # the running guard's, if the kernel has pidfds

    def add(self, pgid: int) -> None:
        """Guard ``pgid`` (a worker was just spawned as its leader)."""
        with self._lock:
            self._live[pgid] = self._live.get(pgid, 0) + 1
            self._send(f"+{pgid}\n")

    def discard(self, pgid: int) -> None:
        """Stop guarding ``pgid`` (its group is gone, or was SIGKILLed); once per ``add``."""
        with self._lock:
            count = self._live.pop(pgid, 0) - 1
            if count > 0:
                self._live[pgid] = count
            self._send(f"-{pgid}\n")

    def start(self) -> None:
        """Start a guard and tell it every live group (blocking: call it from a thread).

        ``posix_spawn`` rather than ``subprocess``: vfork speed without
        making the guard import subprocess (1.4 MiB). It cannot close the
        fds agentvisor inherited from its own parent: the guard does.
        """
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        try:
            pid = os.posix_spawn(
                sys.executable,
                [sys.executable, "-I", "-S", os.path.abspath(__file__)],
                # Not a worker's descendant: without agentvisor's own spawn tag (when
                # agentvisor runs under another), an outer agentvisor that reaps orphans
                # would kill the guard before it has done its work.
                {k: v for k, v in os.environ.items() if k != "AGENTVISOR_SPAWN"},
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, read_fd, 0),
                    (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                ],
                setsid=True,
                setsigmask=STOP_SIGNALS,  # until it ignores them (main)
            )
        except BaseException:
            os.close(write_fd)
            raise
        finally:
            os.close(read_fd)
        try:
            pidfd: int | None = os.pidfd_open(pid)
        except OSError:  # kernel < 5.3: the caller waits in a thread instead
            pidfd = None
        with self._lock:
            snapshot = "".join(f"+{pgid}\n" * count for pgid, count in self._live.items())
            self._write_fd, self.pid, self.pidfd = write_fd, pid, pidfd
            self._send(snapshot)

    def close_pipe(self) -> bool:
        """Close the write end: a running guard kills what it knows and exits.

        False if there was no guard to tell.
        """
        with self._lock:
            write_fd, self._write_fd = self._write_fd, None
        if write_fd is None:
            return False
        os.close(write_fd)
        return True

    def wait_exited(self) -> None:
        """Block until the guard has exited, without reaping it (no pidfd: in a thread)."""
        if self.pid is not None:
            os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)

    def reap(self) -> str:
        """Collect a guard that has exited, and say how it ended.

        The caller has released :attr:`pidfd` from its event loop (if any) first.
        """
        self.close_pipe()
        pid, pidfd = self.pid, self.pidfd
        self.pid = self.pidfd = None
        if pidfd is not None:
            os.close(pidfd)
        if pid is None:
            return "none was running"
        status = os.waitpid(pid, 0)[1]
        if os.WIFSIGNALED(status):
            return f"pid {pid} killed by {signal.Signals(os.WTERMSIG(status)).name}"
        return f"pid {pid} exited with status {os.waitstatus_to_exitcode(status)}"

    def _send(self, message: str) -> None:
        """Write to the guard (lock held). A dead guard is the watcher's business."""
        data = memoryview(message.encode())
        while data and self._write_fd is not None:
            try:
                data = data[os.write(self._write_fd, data) :]
            except OSError:  # BrokenPipeError: it died and is about to be replaced
                return


if __name__ == "__main__":
    main()
