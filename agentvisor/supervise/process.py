"""Starting, watching and signalling worker processes (Linux).

Why this is not ``trio.lowlevel.open_process``:

* **No orphans when agentvisor is SIGKILLed.** Every child asks the kernel
  for ``PR_SET_PDEATHSIG = SIGKILL``. The kernel fires that signal when the
  *thread* that forked the child exits, not the process. Trio forks from its
  cached worker threads, which retire after being idle, and that would kill
  healthy workers at random. So :class:`OSLauncher` forks from one dedicated,
  long-lived thread of its own.
* **No polling.** Exits are awaited through a pidfd (``pidfd_open``, Linux
  5.3+) with ``trio.lowlevel.wait_readable``; only when pidfds are unavailable
  does a thread block in ``waitid(WNOWAIT)``.
* **Groups.** Every child leads its own session and process group
  (``pgid == pid``), so stopping and killing reach its grandchildren too.

Caveat: PDEATHSIG reaches only the direct child. A grandchild (``sh -c``
running ``node``, a worker's own subprocesses) outlives a SIGKILLed
agentvisor unless the child arranges the same for its own children; under
systemd, ``KillMode=control-group`` covers that case.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import queue
import signal
import subprocess
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Protocol

import attrs
import trio

from agentvisor.errors import ServiceStartFailed

_PR_SET_PDEATHSIG = 1
_JOIN_TIMEOUT = 5.0  # seconds to wait for the spawner thread when closing


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
    """

    def __init__(
        self, popen: subprocess.Popen[bytes], stdout_fd: int, stderr_fd: int, pidfd: int | None
    ) -> None:
        self._popen = popen
        self.pid: int = popen.pid
        self.pgid: int = popen.pid  # start_new_session: the child leads its own group
        self.stdout: trio.lowlevel.FdStream = trio.lowlevel.FdStream(stdout_fd)
        self.stderr: trio.lowlevel.FdStream = trio.lowlevel.FdStream(stderr_fd)
        self._pidfd = pidfd
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
                self._close_pidfd()
            returncode = self._popen.returncode
            assert returncode is not None
            return returncode

    def signal_group(self, sig: int) -> None:
        """Send ``sig`` to the child's whole process group; a gone group is no error.

        Still useful after the leader was reaped: grandchildren keep the group
        (and its id) alive, and the id cannot be reused while they do.
        """
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, sig)

    def kill_group(self) -> None:
        self.signal_group(signal.SIGKILL)

    def close(self) -> None:
        """Release the pidfd and the pipes (readers get ``ClosedResourceError``)."""
        if self._closed:
            return
        self._closed = True
        self.stdout.close()
        self.stderr.close()
        self._close_pidfd()
        if self._popen.returncode is None:
            self.kill_group()
            _reap_in_background(self._popen)

    def _close_pidfd(self) -> None:
        if self._pidfd is not None:
            trio.lowlevel.notify_closing(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None


def _wait_exited_without_reaping(pid: int) -> None:
    """Fallback without pidfds: block until ``pid`` has exited, leave it unreaped.

    WNOWAIT keeps the zombie, so an abandoned (cancelled) wait steals nothing.
    """
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)


def _reap_in_background(popen: subprocess.Popen[bytes]) -> None:
    """Reap a child that was sent SIGKILL, without blocking the caller.

    A throwaway thread, not the spawner thread: a child stuck in an
    uninterruptible sleep must not hold up every later spawn.
    """
    threading.Thread(target=popen.wait, name=f"agentvisor-reap-{popen.pid}", daemon=True).start()


@attrs.frozen
class _Started:
    """A child the spawner thread started, with raw fds not yet owned by trio."""

    popen: subprocess.Popen[bytes]
    stdout_fd: int
    stderr_fd: int
    pidfd: int | None

    def discard(self) -> None:
        """Kill and reap a child nobody is waiting for any more (any thread)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        for fd in (self.stdout_fd, self.stderr_fd, self.pidfd):
            if fd is not None:
                os.close(fd)
        _reap_in_background(self.popen)


@attrs.define(eq=False)
class _Request:
    """One spawn handed from a trio task to the spawner thread.

    ``lock`` decides who owns the child when the caller is cancelled: the
    thread discards it if ``abandoned`` is already set, otherwise it publishes
    ``outcome`` and the trio side owns it.
    """

    spec: LaunchSpec
    token: trio.lowlevel.TrioToken
    done: trio.Event = attrs.field(factory=trio.Event)
    lock: threading.Lock = attrs.field(factory=threading.Lock)
    outcome: _Started | BaseException | None = None
    abandoned: bool = False


class OSLauncher:
    """Starts children from one dedicated thread; see the module docstring.

    Use :func:`open_launcher`. Leaving it ends the spawner thread, and the
    kernel then SIGKILLs every child still running: stop children first.
    """

    def __init__(self) -> None:
        self._requests: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="agentvisor-spawner", daemon=True)
        self._closed = False
        self._prctl = _load_prctl()

    async def spawn(self, spec: LaunchSpec) -> OSProcess:
        """Start a child; raise :class:`SpawnError` when it cannot be started.

        Cancel-safe: if the caller is cancelled after the fork, the child is
        killed and reaped, never leaked.
        """
        if self._closed:
            raise trio.ClosedResourceError("the launcher is closed")
        request = _Request(spec, trio.lowlevel.current_trio_token())
        self._requests.put(request)
        try:
            await request.done.wait()
        except BaseException:
            with request.lock:
                request.abandoned = True
                outcome = request.outcome
            if isinstance(outcome, _Started):
                outcome.discard()
            raise
        outcome = request.outcome
        if isinstance(outcome, BaseException):
            raise outcome
        assert outcome is not None
        return OSProcess(outcome.popen, outcome.stdout_fd, outcome.stderr_fd, outcome.pidfd)

    def _start(self) -> None:
        self._thread.start()

    async def _stop(self) -> None:
        self._closed = True
        self._requests.put(None)
        with trio.move_on_after(_JOIN_TIMEOUT, shield=True):
            await trio.to_thread.run_sync(self._thread.join, abandon_on_cancel=True)

    def _serve(self) -> None:
        """The spawner thread: fork every child, for as long as the launcher lives."""
        while (request := self._requests.get()) is not None:
            outcome: _Started | BaseException
            try:
                outcome = self._start_child(request.spec)
            except BaseException as exc:  # delivered to the waiting task
                outcome = exc
            with request.lock:
                if request.abandoned:
                    if isinstance(outcome, _Started):
                        outcome.discard()
                    continue
                request.outcome = outcome
            try:
                request.token.run_sync_soon(request.done.set)
            except trio.RunFinishedError:  # pragma: no cover - the run ended mid-spawn
                if isinstance(outcome, _Started):
                    outcome.discard()

    def _start_child(self, spec: LaunchSpec) -> _Started:
        """Fork and exec one child (spawner thread only)."""
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
                env=dict(spec.env),
                close_fds=True,
                start_new_session=True,
                preexec_fn=_die_with_parent(self._prctl, os.getpid()),
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
        try:
            pidfd: int | None = os.pidfd_open(popen.pid)
        except OSError:  # kernel < 5.3 or a seccomp filter: wait in a thread instead
            pidfd = None
        return _Started(popen, out_r, err_r, pidfd)


@asynccontextmanager
async def open_launcher() -> AsyncIterator[OSLauncher]:
    """Run an :class:`OSLauncher`'s spawner thread for the duration of the block."""
    launcher = OSLauncher()
    launcher._start()
    try:
        yield launcher
    finally:
        await launcher._stop()


def _load_prctl() -> Callable[..., int]:
    """Resolve libc's prctl before any fork: the child must not load libraries."""
    libc = ctypes.CDLL(None, use_errno=True)
    prctl = libc.prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


def _die_with_parent(prctl: Callable[..., int], parent_pid: int) -> Callable[[], None]:
    """The child-side setup, run between fork and exec.

    Runs after ``Popen`` has changed credentials (which clears PDEATHSIG), so
    the setting sticks. If agentvisor died before ``prctl`` took effect, the
    child was already reparented: exit instead of running as an orphan. The
    signal mask is cleared because a child inherits the forking thread's.
    """

    sigkill = int(signal.SIGKILL)

    def preexec() -> None:
        signal.pthread_sigmask(signal.SIG_SETMASK, ())
        if prctl(_PR_SET_PDEATHSIG, sigkill, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent_pid:
            os._exit(1)

    return preexec


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
