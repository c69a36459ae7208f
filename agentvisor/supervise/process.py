"""Starting, watching and signalling worker processes (Linux).

* **Fast spawns.** Children start through ``subprocess.Popen`` without a
  ``preexec_fn``, so CPython vforks instead of copying the whole daemon
  (0.5-2.5 ms instead of ~10 ms a spawn), from trio's worker threads, several
  at once.
* **No orphans when agentvisor is SIGKILLed.** A small guard process
  SIGKILLs every worker's process group, grandchildren included, once the
  pipe from agentvisor reaches end-of-file (:mod:`agentvisor.supervise.guard`).
  Only a SIGKILL between a worker's fork and the announcement of its group,
  well under a millisecond, can leave that one worker behind.
* **No polling.** Exits are awaited through a pidfd (``pidfd_open``, Linux
  5.3+) with ``trio.lowlevel.wait_readable``; only when pidfds are unavailable
  does a thread block in ``waitid(WNOWAIT)``.
* **Groups.** Every child leads its own session and process group
  (``pgid == pid``), so stopping and killing reach its grandchildren too.
* **Strays.** A grandchild that leaves the group (``setsid``) is found by its
  spawn's tag and signalled with the group (:mod:`agentvisor.supervise.strays`);
  agentvisor is a child subreaper while the launcher runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import signal
import subprocess
import threading
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Protocol

import attrs
import trio

from agentvisor.errors import ServiceStartFailed
from agentvisor.supervise.guard import GuardLink
from agentvisor.supervise.strays import SPAWN_VAR, Family, set_subreaper

log = logging.getLogger("agentvisor.process")

#: Spawns in flight at once. Each holds a thread while the kernel copies page
#: tables and the child execs; beyond a few, they only queue for the cores.
_CONCURRENT_SPAWNS = 4
_GUARD_EXIT_TIMEOUT = 5.0  # seconds for the guard to exit once its pipe is closed
_GUARD_RETRY_DELAY = 1.0  # seconds between attempts to start a guard that fails to start
_TEND_RETRY_DELAY = 0.2  # seconds before tending again when a spawn was in flight
_TEND_ATTEMPTS = 50  # then the next SIGCHLD tends again


class SpawnError(ServiceStartFailed):
    """A child could not be started; the message says which program and why."""


@attrs.frozen
class LaunchSpec:
    """Everything needed to start one child."""

    argv: tuple[str, ...]
    env: Mapping[str, str]  # the complete environment of the child
    cwd: str
    user: str | None = None  # run as this user; needs agentvisor to run as root


class ProcessHandle(Protocol):
    """One running child, as the supervisor sees it (fakes implement this too)."""

    @property
    def pid(self) -> int: ...

    @property
    def pgid(self) -> int: ...

    @property
    def stdout(self) -> trio.abc.ReceiveStream: ...

    @property
    def stderr(self) -> trio.abc.ReceiveStream: ...

    @property
    def returncode(self) -> int | None:
        """None while running; negative = killed by that signal."""
        ...

    async def wait(self) -> int: ...

    def signal_group(self, sig: int) -> None: ...

    def kill_group(self) -> None: ...

    def close(self) -> None: ...


class Launcher(Protocol):
    async def spawn(self, spec: LaunchSpec) -> ProcessHandle: ...


class OSProcess:
    """A child started by :class:`OSLauncher`.

    ``wait()`` reaps the child; call ``close()`` afterwards to release the
    pipes. ``close()`` on a child that was never reaped kills its group and
    reaps it in the background, so dropping a handle never leaves a zombie.
    The guard forgets the group as soon as it is known to be gone (``wait()``
    found it empty) and at the latest on ``close()``, so a pgid that the
    kernel hands out again is never killed in its name.
    """

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        stdout_fd: int,
        stderr_fd: int,
        pidfd: int | None,
        guard: GuardLink,
        family: Family,
        tag: str,
    ) -> None:
        self._popen = popen
        self.pid: int = popen.pid
        self.pgid: int = popen.pid  # start_new_session: the child leads its own group
        self.stdout: trio.lowlevel.FdStream = trio.lowlevel.FdStream(stdout_fd)
        self.stderr: trio.lowlevel.FdStream = trio.lowlevel.FdStream(stderr_fd)
        self._pidfd = pidfd
        self._guard: GuardLink | None = guard
        self._family = family
        self.tag = tag
        self._wait_lock = trio.Lock()  # wait_readable allows one waiter per fd
        self._closed = False

    def __repr__(self) -> str:
        return f"<OSProcess pid={self.pid} returncode={self.returncode}>"

    @property
    def returncode(self) -> int | None:
        return self._popen.returncode

    async def wait(self) -> int:
        """Wait for the child to exit, reap it and return its returncode.

        Cancel-safe: a cancelled wait has reaped nothing. Several tasks may
        wait at once.
        """
        async with self._wait_lock:
            if self._popen.returncode is None:
                if self._closed:
                    raise trio.ClosedResourceError("the process handle was closed")
                if self._pidfd is not None:
                    await trio.lowlevel.wait_readable(self._pidfd)
                else:
                    await trio.to_thread.run_sync(
                        _wait_exited_without_reaping, self.pid, abandon_on_cancel=True
                    )
                # The child is a zombie now: poll() reaps it without blocking.
                if self._popen.poll() is None:  # pragma: no cover - kernel guarantees exit
                    await trio.to_thread.run_sync(self._popen.wait)
                self._family.discard(self.pid)
                self._close_pidfd()
                if not _group_exists(self.pgid):
                    self._unguard()
            returncode = self._popen.returncode
            assert returncode is not None
            return returncode

    def signal_group(self, sig: int) -> None:
        """Send ``sig`` to the child's whole process group, and to its strays (descendants
        that left the group); a gone group is no error.

        Still useful after the leader was reaped: grandchildren keep the group
        (and its id) alive, and the id cannot be reused while they do.
        """
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, sig)
        leader = self.pid if self._popen.returncode is None else None
        self._family.signal_strays(self.tag, leader, sig)

    def kill_group(self) -> None:
        self.signal_group(signal.SIGKILL)

    def close(self) -> None:
        """Release the pidfd and the pipes (readers get ``ClosedResourceError``).

        The caller kills the group before closing a reaped child (the instance
        does): grandchildren left in it are no longer guarded after this.
        """
        if self._closed:
            return
        self._closed = True
        self.stdout.close()
        self.stderr.close()
        self._close_pidfd()
        if self._popen.returncode is None:
            self.kill_group()
            _reap_in_background(self._popen, self._family)
        self._unguard()

    def _unguard(self) -> None:
        if self._guard is not None:
            self._guard.discard(self.pgid)
            self._guard = None

    def _close_pidfd(self) -> None:
        if self._pidfd is not None:
            trio.lowlevel.notify_closing(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None


def _group_exists(pgid: int) -> bool:
    """Whether any process (a zombie too) is still in group ``pgid``."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # members we may not signal are members all the same
        pass
    return True


def _wait_exited_without_reaping(pid: int) -> None:
    """Fallback without pidfds: block until ``pid`` has exited, leave it unreaped.

    WNOWAIT keeps the zombie, so an abandoned (cancelled) wait steals nothing.
    """
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)


def _reap_in_background(popen: subprocess.Popen[bytes], family: Family) -> None:
    """Reap a child that was sent SIGKILL, without blocking the caller.

    A thread of its own: a child stuck in an uninterruptible sleep must not
    hold up trio's thread pool.
    """

    def reap() -> None:
        popen.wait()
        family.discard(popen.pid)

    threading.Thread(target=reap, name=f"agentvisor-reap-{popen.pid}", daemon=True).start()


class OSLauncher:
    """Starts children on trio's worker threads; see the module docstring.

    Use :func:`open_launcher`. Leaving it closes the guard's pipe, and the
    guard then SIGKILLs every child still running: stop children first.
    """

    def __init__(self, guard: GuardLink, family: Family) -> None:
        self._guard = guard
        self._family = family
        self._limiter = trio.CapacityLimiter(_CONCURRENT_SPAWNS)
        self._closed = False

    @property
    def guard_pid(self) -> int | None:
        """The orphan guard's pid; None while it is being restarted."""
        return self._guard.pid

    async def spawn(self, spec: LaunchSpec) -> OSProcess:
        """Start a child; raise :class:`SpawnError` when it cannot be started.

        Cancel-safe: if the caller is cancelled while the child is being
        started, the child is killed and reaped, never leaked.
        """
        if self._closed:
            raise trio.ClosedResourceError("the launcher is closed")
        popen, out_r, err_r, pidfd, tag = await trio.to_thread.run_sync(
            self._start_child, spec, limiter=self._limiter
        )
        child = OSProcess(popen, out_r, err_r, pidfd, self._guard, self._family, tag)
        try:
            await trio.lowlevel.checkpoint_if_cancelled()
        except BaseException:
            child.close()
            raise
        return child

    def _start_child(
        self, spec: LaunchSpec
    ) -> tuple[subprocess.Popen[bytes], int, int, int | None, str]:
        """Vfork and exec one child, announce its group to the guard (worker thread).

        Returns the child, the read ends of its stdout and stderr, its pidfd and its tag.
        """
        with self._family.spawning() as tag:
            popen, out_r, err_r = self._popen(spec, tag)
            self._family.add(popen.pid, tag)
        self._guard.add(popen.pid)
        try:
            pidfd: int | None = os.pidfd_open(popen.pid)
        except OSError:  # kernel < 5.3 or a seccomp filter: wait in a thread instead
            pidfd = None
        return popen, out_r, err_r, pidfd, tag

    def _popen(self, spec: LaunchSpec, tag: str) -> tuple[subprocess.Popen[bytes], int, int]:
        program = spec.argv[0] if spec.argv else ""
        if not program:
            raise SpawnError("cannot start a child with an empty command line")
        uid, gid, groups = _credentials(spec.user, program)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        try:
            popen = subprocess.Popen(
                spec.argv,
                stdin=subprocess.DEVNULL,
                stdout=out_w,
                stderr=err_w,
                cwd=spec.cwd,
                env={**spec.env, SPAWN_VAR: tag},
                close_fds=True,
                start_new_session=True,
                user=uid,
                group=gid,
                extra_groups=groups,
            )
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            for fd in (out_r, err_r):
                os.close(fd)
            raise SpawnError(_describe_failure(exc, spec), argv0=program) from None
        finally:
            os.close(out_w)
            os.close(err_w)
        return popen, out_r, err_r


async def _watch_guard(guard: GuardLink, scope: trio.CancelScope, done: trio.Event) -> None:
    """Replace the guard whenever it dies, until ``scope`` is cancelled (a system task).

    Never raises: an exception in a system task would crash the whole run.
    """
    try:
        with scope:
            while True:
                await _wait_guard_exited(guard)
                how = guard.reap()
                log.warning("the orphan guard ended (%s); starting another", how)
                while True:
                    try:
                        await trio.to_thread.run_sync(guard.start)
                        break
                    except Exception as exc:
                        log.error(
                            "cannot start the orphan guard (%s): workers would outlive a "
                            "SIGKILL of agentvisor; retrying in %g s",
                            exc,
                            _GUARD_RETRY_DELAY,
                        )
                        await trio.sleep(_GUARD_RETRY_DELAY)
    finally:
        done.set()


async def _tend(family: Family, scope: trio.CancelScope) -> None:
    """On every SIGCHLD, reap re-parented orphans and kill those whose worker is gone.

    A system task, so it never raises: an error is logged and tending goes on.
    """
    with scope, trio.open_signal_receiver(signal.SIGCHLD) as signals:
        async for _ in signals:
            try:
                for _attempt in range(_TEND_ATTEMPTS):
                    if await trio.to_thread.run_sync(family.tend):
                        break
                    await trio.sleep(_TEND_RETRY_DELAY)  # a spawn was in flight
            except Exception:
                log.exception("tending orphaned worker processes failed")


async def _wait_guard_exited(guard: GuardLink) -> None:
    """Return once the guard has exited, its pidfd released for ``guard.reap()``."""
    if guard.pidfd is not None:
        await trio.lowlevel.wait_readable(guard.pidfd)
        trio.lowlevel.notify_closing(guard.pidfd)
    else:
        await trio.to_thread.run_sync(guard.wait_exited, abandon_on_cancel=True)


@asynccontextmanager
async def open_launcher() -> AsyncIterator[OSLauncher]:
    """Run an :class:`OSLauncher` and its orphan guard for the duration of the block.

    Leaving the block closes the guard's pipe and waits (bounded) for the
    guard to exit; it SIGKILLs whatever groups are still registered first.
    """
    guard = GuardLink()
    await trio.to_thread.run_sync(guard.start)
    watching, watched = trio.CancelScope(), trio.Event()
    trio.lowlevel.spawn_system_task(_watch_guard, guard, watching, watched, name="guard-watch")
    family = Family(others=lambda: (guard.pid,))
    if not set_subreaper(True):
        log.warning("cannot become a child subreaper: a worker's setsid() grandchild could escape")
    tending = trio.CancelScope()
    trio.lowlevel.spawn_system_task(_tend, family, tending, name="orphan-reaper")
    launcher = OSLauncher(guard, family)
    try:
        yield launcher
    finally:
        launcher._closed = True
        tending.cancel()
        set_subreaper(False)
        watching.cancel()
        with trio.move_on_after(_GUARD_EXIT_TIMEOUT, shield=True):
            await watched.wait()
            if guard.close_pipe():
                await _wait_guard_exited(guard)
                guard.reap()
        if guard.pid is not None:
            log.warning("the orphan guard (pid %d) has not exited; leaving it", guard.pid)


def _credentials(user: str | None, program: str) -> tuple[int | None, int | None, list[int] | None]:
    """Uid, primary group and supplementary groups that run the child as ``user``.

    ``Popen(user=...)`` alone would keep root's groups, so the groups are set too.
    All None: keep agentvisor's own credentials.
    """
    if user is None:
        return None, None, None
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise SpawnError(
            f"cannot start {program!r}: unknown user {user!r}", argv0=program
        ) from None
    if entry.pw_uid == os.geteuid():
        return None, None, None
    if os.geteuid() != 0:
        raise SpawnError(
            f"cannot start {program!r} as user {user!r}: agentvisor must run as root "
            "to change user (remove `user` or run agentvisor as root)",
            argv0=program,
        )
    return entry.pw_uid, entry.pw_gid, os.getgrouplist(entry.pw_name, entry.pw_gid)


def _describe_failure(exc: BaseException, spec: LaunchSpec) -> str:
    program = spec.argv[0]
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc)
        if exc.filename is not None and exc.filename == spec.cwd and program != spec.cwd:
            return f"cannot start {program!r}: working directory {spec.cwd!r}: {reason}"
        return f"cannot start {program!r}: {reason}"
    return f"cannot start {program!r}: {exc}"
