"""The pidfile in ``state_dir``: one agentvisor per state directory.

The file is locked with ``flock`` for as long as agentvisor runs, so a stale
file left by a crash never blocks a start (nobody holds its lock), and two
instances can never share a state_dir. The lock, not the pid written in the
file, is what counts; the pid is there for people and for ``agentvisor
reload``'s SIGHUP fallback.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager

from agentvisor.errors import AlreadyRunning

#: Attempts to lock when another process removes the file between our open and lock.
_LOCK_ATTEMPTS = 5


def read_pid(path: str) -> int | None:
    """The pid written in ``path``, or None when the file is missing or holds no pid."""
    try:
        with open(path, encoding="ascii") as file:
            text = file.read(32).strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None


def _open_locked(path: str) -> int:
    for _attempt in range(_LOCK_ATTEMPTS):
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            pid = read_pid(path)
            holder = f"pid {pid}" if pid is not None else "pid unknown"
            state_dir = os.path.dirname(os.path.abspath(path))
            raise AlreadyRunning(
                f"another agentvisor ({holder}) is running with state_dir {state_dir}; "
                "stop it first or use another state_dir",
                pid=pid,
                state_dir=state_dir,
            ) from None
        except BaseException:
            os.close(fd)
            raise
        # The previous holder may have removed the file between our open and lock:
        # then we locked an orphaned inode, and must lock the file now at ``path``.
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)
    raise AlreadyRunning(f"cannot lock the pidfile {path}: it keeps being replaced", path=path)


@contextmanager
def open_pidfile(path: str) -> Iterator[int]:
    """Create, lock and fill ``path`` with our pid; yields the pid; removes the file on exit.

    Raises ``AlreadyRunning`` when another process holds the lock.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd = _open_locked(path)
    pid = os.getpid()
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{pid}\n".encode("ascii"))
        yield pid
    finally:
        try:
            # Removed while still locked, so no newcomer can lock this inode and be misled.
            os.unlink(path)
        except FileNotFoundError:
            pass
        finally:
            os.close(fd)
