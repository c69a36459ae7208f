"""OSLauncher against real children: groups, signals, exits, and no orphans."""

from __future__ import annotations

import ctypes
import os
import pwd
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import trio

from agentvisor.supervise.guard import GuardLink
from agentvisor.supervise.process import (
    LaunchSpec,
    OSLauncher,
    OSProcess,
    SpawnError,
    open_launcher,
)
from agentvisor.supervise.strays import Family
from tests.children import LineReader, child_argv, child_spec, running, wait_gone

DEADLINE = 10  # seconds; generous for a loaded CI machine, never reached when things work


def _python(code: str, *, cwd: str = "/", env: dict[str, str] | None = None) -> LaunchSpec:
    return LaunchSpec(argv=(sys.executable, "-c", code), env=env or dict(os.environ), cwd=cwd)


def _is_running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def test_term_to_the_group_ends_a_sleeper_with_minus_15() -> None:
    async with open_launcher() as launcher:
        spec = child_spec("sleeper.py", "--on-term", "die")
        async with running(launcher, spec) as child:
            with trio.fail_after(DEADLINE):
                assert await LineReader(child.stdout).line() == "ready"
                assert child.returncode is None
                child.signal_group(signal.SIGTERM)
                assert await child.wait() == -signal.SIGTERM
            assert child.returncode == -signal.SIGTERM


async def test_a_sleeper_exits_0_on_term() -> None:
    async with open_launcher() as launcher, running(launcher, child_spec("sleeper.py")) as child:
        with trio.fail_after(DEADLINE):
            await LineReader(child.stdout).line()
            child.signal_group(signal.SIGTERM)
            assert await child.wait() == 0


async def test_exit_code_and_both_streams_of_a_crasher() -> None:
    spec = child_spec("crasher.py", "--code", "3")
    async with open_launcher() as launcher, running(launcher, spec) as child:
        with trio.fail_after(DEADLINE):
            assert await LineReader(child.stdout).line() == "crasher: on stdout"
            assert await LineReader(child.stderr).line() == "crasher: on stderr"
            assert await child.wait() == 3


async def test_a_missing_program_raises_spawn_error_naming_it() -> None:
    spec = LaunchSpec(argv=("no-such-program-xyz", "--flag"), env={"PATH": "/usr/bin"}, cwd="/")
    async with open_launcher() as launcher:
        with pytest.raises(SpawnError) as caught:
            await launcher.spawn(spec)
    assert str(caught.value) == "cannot start 'no-such-program-xyz': No such file or directory"
    assert caught.value.code == "SERVICE_START_FAILED"


async def test_an_empty_command_line_is_a_spawn_error() -> None:
    async with open_launcher() as launcher:
        with pytest.raises(SpawnError, match="empty command line"):
            await launcher.spawn(LaunchSpec(argv=(), env={}, cwd="/"))


async def test_a_missing_working_directory_is_named(tmp_path: Path) -> None:
    missing = str(tmp_path / "gone")
    async with open_launcher() as launcher:
        with pytest.raises(SpawnError, match=r"working directory '.*gone': No such file"):
            await launcher.spawn(_python("pass", cwd=missing))


async def test_env_and_cwd_are_applied(tmp_path: Path) -> None:
    code = "import os; print(os.environ.get('FOO'), os.environ.get('HOME'), os.getcwd())"
    spec = _python(code, cwd=str(tmp_path), env={"FOO": "bar"})
    async with open_launcher() as launcher, running(launcher, spec) as child:
        with trio.fail_after(DEADLINE):
            assert await LineReader(child.stdout).line() == f"bar None {tmp_path}"
            assert await child.wait() == 0


async def test_child_leads_its_own_session_and_reads_dev_null() -> None:
    code = "import os, sys; print(os.getpgid(0), os.getsid(0), repr(sys.stdin.read()))"
    async with open_launcher() as launcher, running(launcher, _python(code)) as child:
        with trio.fail_after(DEADLINE):
            line = await LineReader(child.stdout).line()
            await child.wait()
    assert child.pgid == child.pid
    assert line == f"{child.pid} {child.pid} ''"


async def test_user_is_applied_as_root_and_refused_clearly_otherwise() -> None:
    # One test for both sides, so that neither is ever skipped: CI runs as one
    # user or the other, and each side asserts what must happen there.
    # sh and id, not this venv's python: nobody may not read the venv.
    script = 'echo "$(id -u) $(id -g) $(id -G)"'
    spec = LaunchSpec(("sh", "-c", script), env={"PATH": "/usr/bin:/bin"}, cwd="/", user="nobody")
    nobody = pwd.getpwnam("nobody")
    async with open_launcher() as launcher:
        if os.geteuid() != 0:
            with pytest.raises(SpawnError, match="as user 'nobody': agentvisor must run as root"):
                await launcher.spawn(spec)
            return
        async with running(launcher, spec) as child:
            with trio.fail_after(DEADLINE):
                uid, gid, *groups = (await LineReader(child.stdout).line()).split()
    assert (int(uid), int(gid)) == (nobody.pw_uid, nobody.pw_gid)
    assert {int(group) for group in groups} == set(os.getgrouplist("nobody", nobody.pw_gid))


async def test_an_unknown_user_is_a_spawn_error() -> None:
    spec = _python("pass")
    async with open_launcher() as launcher:
        with pytest.raises(SpawnError, match="unknown user 'no-such-user-xyz'"):
            await launcher.spawn(LaunchSpec(spec.argv, spec.env, spec.cwd, user="no-such-user-xyz"))


async def test_kill_group_kills_a_sigterm_ignoring_grandchild() -> None:
    async with (
        open_launcher() as launcher,
        running(launcher, child_spec("sigterm_ignorer.py")) as child,
    ):
        with trio.fail_after(DEADLINE):
            pids = await LineReader(child.stdout).json()
            assert pids["pid"] == child.pid
            child.kill_group()
            assert await child.wait() == -signal.SIGKILL
            await wait_gone(pids["grandchild"])


async def test_signalling_a_group_that_is_gone_is_no_error() -> None:
    async with open_launcher() as launcher, running(launcher, _python("pass")) as child:
        with trio.fail_after(DEADLINE):
            assert await child.wait() == 0
        child.signal_group(signal.SIGTERM)
        child.kill_group()


async def test_wait_is_cancel_safe_and_allows_several_waiters() -> None:
    async with open_launcher() as launcher, running(launcher, child_spec("sleeper.py")) as child:
        with trio.move_on_after(0.05):
            await child.wait()
        assert child.returncode is None
        results: list[int] = []

        async def wait_for_it() -> None:
            results.append(await child.wait())

        with trio.fail_after(DEADLINE):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(wait_for_it)
                nursery.start_soon(wait_for_it)
                await trio.testing.wait_all_tasks_blocked()
                child.kill_group()
    assert results == [-signal.SIGKILL, -signal.SIGKILL]


async def test_many_concurrent_spawns_all_start() -> None:
    async with open_launcher() as launcher:
        children = []

        async def start_one() -> None:
            children.append(await launcher.spawn(_python("print('hi')")))

        with trio.fail_after(DEADLINE):
            async with trio.open_nursery() as nursery:
                for _ in range(20):
                    nursery.start_soon(start_one)
            for child in children:
                assert await LineReader(child.stdout).line() == "hi"
                assert await child.wait() == 0
                child.close()
    assert len({child.pid for child in children}) == 20


async def test_close_without_wait_kills_and_reaps_the_child() -> None:
    async with open_launcher() as launcher:
        child = await launcher.spawn(child_spec("sleeper.py"))
        child.close()
        with trio.fail_after(DEADLINE):
            await wait_gone(child.pid)
            # reaped too, not a zombie: the pid disappears from /proc
            while psutil.pid_exists(child.pid):
                await trio.sleep(0.01)


class RecordingGuard(GuardLink):
    """A guard link that records announcements, and may cancel a scope on ``+``.

    Never started: it only records, and the test kills what it spawns itself.
    """

    def __init__(self, cancel_on_add: trio.CancelScope | None = None) -> None:
        super().__init__()
        self.added: list[int] = []
        self.discarded: list[int] = []
        self._cancel_on_add = cancel_on_add

    def add(self, pgid: int) -> None:
        super().add(pgid)
        self.added.append(pgid)
        if self._cancel_on_add is not None:  # called on a worker thread, mid-spawn
            trio.from_thread.run_sync(self._cancel_on_add.cancel)

    def discard(self, pgid: int) -> None:
        super().discard(pgid)
        self.discarded.append(pgid)


async def test_a_spawn_cancelled_while_starting_the_child_leaves_no_child() -> None:
    with trio.CancelScope() as scope:
        guard = RecordingGuard(cancel_on_add=scope)
        await OSLauncher(guard, Family()).spawn(child_spec("sleeper.py"))
    assert scope.cancelled_caught
    [pid] = guard.added
    with trio.fail_after(DEADLINE):
        await wait_gone(pid)
    assert guard.discarded == [pid]


async def test_the_guard_forgets_a_group_once_it_is_empty_not_before() -> None:
    guard = RecordingGuard()
    launcher = OSLauncher(guard, Family())
    quick = await launcher.spawn(_python("pass"))
    with trio.fail_after(DEADLINE):
        await quick.wait()
    assert guard.discarded == [quick.pgid]  # gone: forgotten before close()
    quick.close()
    assert guard.discarded == [quick.pgid]
    # A leader that dies leaving its child in the group: the group lives on.
    async with running(launcher, child_spec("spawner.py")) as leader:
        with trio.fail_after(DEADLINE):
            pids = await LineReader(leader.stdout).json()
            os.kill(leader.pid, signal.SIGKILL)
            assert await leader.wait() == -signal.SIGKILL
        assert guard.discarded == [quick.pgid]
        assert _is_running(pids["grandchild"])
    # running() killed the group and closed the handle
    assert guard.discarded == [quick.pgid, leader.pgid]
    with trio.fail_after(DEADLINE):
        await wait_gone(pids["grandchild"])


async def test_no_worker_holds_the_guards_pipe() -> None:
    code = "import os; print(' '.join(os.readlink(f'/proc/self/fd/{fd}') for fd in (0, 1, 2)))"
    async with open_launcher() as launcher, running(launcher, _python(code)) as child:
        guard_pipe = os.readlink(f"/proc/{launcher.guard_pid}/fd/0")
        with trio.fail_after(DEADLINE):
            line = await LineReader(child.stdout).line()
            assert await child.wait() == 0
    assert guard_pipe.startswith("pipe:")
    assert guard_pipe not in line
    # close_fds: nothing but 0, 1 and 2 reached the child (3 was listdir's own)


async def test_a_child_spawned_from_a_worker_thread_blocks_no_signals() -> None:
    spec = LaunchSpec(("grep", "^SigBlk", "/proc/self/status"), {"PATH": "/usr/bin:/bin"}, "/")
    async with open_launcher() as launcher, running(launcher, spec) as child:
        with trio.fail_after(DEADLINE):
            line = await LineReader(child.stdout).line()
    assert int(line.split()[1], 16) == 0


def _pdeathsig_preexec() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)


async def test_children_survive_when_trio_worker_threads_retire(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Regression: children must not depend on the thread that spawned them.

    PR_SET_PDEATHSIG fires when the *thread* that forked a child exits, so
    agentvisor once forked from a dedicated thread. Spawns now run on trio's
    worker threads, which retire after IDLE_TIMEOUT seconds idle (10 s in
    trio 0.35, a module global read at each wait in ``_thread_cache.py``; the
    test lowers it). A control child is forked with PDEATHSIG from a worker
    thread, which also asks the launcher for ours. The control dying proves
    that the workers retired; ours must live on.
    """
    monkeypatch.setattr(trio._core._thread_cache, "IDLE_TIMEOUT", 0.05)
    async with open_launcher() as launcher:

        def from_a_worker_thread() -> tuple[subprocess.Popen[bytes], OSProcess]:
            control = subprocess.Popen(
                child_argv("sleeper.py"), stdout=subprocess.DEVNULL, preexec_fn=_pdeathsig_preexec
            )
            ours = trio.from_thread.run(launcher.spawn, child_spec("sleeper.py"))
            return control, ours

        control, ours = await trio.to_thread.run_sync(from_a_worker_thread)
        try:
            with trio.fail_after(DEADLINE):
                await wait_gone(control.pid)
            assert control.wait() == -signal.SIGKILL  # a zombie by now: no blocking
            # The kernel signals a dead thread's children in one pass; give a
            # wrongly forked child a moment to be seen dead before asserting.
            with trio.move_on_after(0.3):
                await ours.wait()
            assert ours.returncode is None
            with trio.fail_after(DEADLINE):
                assert await LineReader(ours.stdout).line() == "ready"
        finally:
            ours.kill_group()
            with trio.move_on_after(5, shield=True):
                await ours.wait()
            ours.close()
