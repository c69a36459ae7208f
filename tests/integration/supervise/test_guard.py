"""The orphan guard: its bookkeeping, the program, agentvisor's end, and both at work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import psutil
import pytest
import trio

from agentvisor.supervise import guard
from agentvisor.supervise.guard import GuardLink, serve, track
from agentvisor.supervise.process import LaunchSpec, ProcessHandle, open_launcher
from tests.children import LineReader, child_argv, running, wait_gone

REPO = Path(__file__).resolve().parents[3]

DEADLINE = 10  # seconds; generous for a loaded CI machine, never reached when things work


def _is_running(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def test_counts_per_group_survive_a_late_minus_for_a_reused_pgid() -> None:
    groups: dict[int, int] = {}
    track(groups, b"+10\n+11\n+10\n-10\n-11\n-12")
    assert groups == {10: 1}


def test_lines_that_are_not_announcements_are_ignored() -> None:
    groups: dict[int, int] = {}
    track(groups, b"+0\n+1\n-1\nhello\n+\n+12x\n++13\n +14\n+15\n")
    assert groups == {15: 1}


def test_a_line_split_across_reads_is_put_back_together() -> None:
    chunks = [b"+12", b"3\n+4", b"56\n-", b"123\n+789"]  # "+789" never ends: not applied
    killed: list[int] = []
    assert serve(lambda size: chunks.pop(0) if chunks else b"", killed.append) == [456]
    assert killed == [456]


def test_groups_that_are_gone_are_not_reported_killed() -> None:
    def kill(pgid: int) -> None:
        if pgid == 20:
            raise ProcessLookupError
        if pgid == 30:
            raise PermissionError

    data = [b"+20\n+30\n+40\n"]
    assert serve(lambda size: data.pop() if data else b"", kill) == [40]


@contextmanager
def sleeper_group() -> Iterator[subprocess.Popen[bytes]]:
    """A sleeper leading its own group; SIGKILLed and reaped at the end whatever happened."""
    proc = subprocess.Popen(
        child_argv("sleeper.py"), stdout=subprocess.PIPE, start_new_session=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        yield proc
    finally:
        proc.kill()
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def test_the_program_kills_the_groups_it_still_knows_at_eof() -> None:
    with sleeper_group() as guarded, sleeper_group() as released:
        program = subprocess.Popen(
            [sys.executable, "-I", "-S", guard.__file__],
            stdin=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        _, err = program.communicate(f"+{guarded.pid}\n+{released.pid}\n-{released.pid}\n".encode())
        assert program.returncode == 0
        assert guarded.wait(timeout=DEADLINE) == -signal.SIGKILL
        report = f"agentvisor guard: agentvisor is gone; SIGKILLed process groups {guarded.pid}\n"
        assert err.decode() == report
        assert released.poll() is None


def test_the_program_ignores_interrupt_terminate_and_hangup_until_eof() -> None:
    program = subprocess.Popen(
        [sys.executable, "-I", "-S", guard.__file__], stdin=subprocess.PIPE, start_new_session=True
    )
    assert program.stdin is not None
    try:
        wait_for_ignored(program.pid, signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            os.kill(program.pid, sig)  # ignored signals are discarded as they are sent
        assert program.poll() is None
    finally:
        program.stdin.close()
    assert program.wait(timeout=DEADLINE) == 0


def _signal_set(pid: int, field: str) -> set[int]:
    """A signal mask of /proc/PID/status (``SigIgn``, ``SigBlk``) as a set."""
    with open(f"/proc/{pid}/status") as status:
        mask = next(int(line.split()[1], 16) for line in status if line.startswith(f"{field}:"))
    return {sig for sig in range(1, 65) if mask & (1 << (sig - 1))}


def ignored_signals(pid: int) -> set[int]:
    return _signal_set(pid, "SigIgn")


def blocked_signals(pid: int) -> set[int]:
    return _signal_set(pid, "SigBlk")


def wait_for_ignored(pid: int, *signals: int) -> None:
    """Return once ``pid`` ignores ``signals``: a guard sets that first thing at start-up."""
    wanted = set(signals)
    while not wanted <= ignored_signals(pid):
        time.sleep(0.005)


def test_a_restarted_guard_is_told_the_live_groups() -> None:
    with sleeper_group() as guarded, sleeper_group() as released:
        link = GuardLink()
        link.start()
        link.add(guarded.pid)
        link.add(released.pid)
        link.discard(released.pid)
        first = link.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        assert link.reap() == f"pid {first} killed by SIGKILL"
        link.add(guarded.pid)  # while no guard runs: remembered for the next one
        link.discard(guarded.pid)
        link.start()
        assert link.pid not in (None, first)
        assert guarded.poll() is None
        assert link.close_pipe()
        assert guarded.wait(timeout=DEADLINE) == -signal.SIGKILL
        assert link.reap().endswith("exited with status 0")
        assert released.poll() is None


def test_the_guard_holds_no_fd_but_its_standard_three() -> None:
    link = GuardLink()
    link.start()
    try:
        assert link.pid is not None
        wait_for_ignored(link.pid, signal.SIGINT)  # set up: inherited fds closed by then
        assert sorted(map(int, os.listdir(f"/proc/{link.pid}/fd"))) == [0, 1, 2]
        assert os.getsid(link.pid) == link.pid
    finally:
        link.close_pipe()
        link.reap()


@pytest.mark.parametrize("count", [1, 3])
def test_a_group_added_several_times_stays_until_as_many_discards(count: int) -> None:
    with sleeper_group() as guarded:
        link = GuardLink()
        for _ in range(count):
            link.add(guarded.pid)
        for _ in range(count - 1):
            link.discard(guarded.pid)
        link.start()  # told by the snapshot
        assert link.close_pipe()
        assert guarded.wait(timeout=DEADLINE) == -signal.SIGKILL
        link.reap()


# agentvisor's side and the guard together: a Python program that uses
# open_launcher() as agentvisor does, signalled and SIGKILLed by the test.

PARENT_PROGRAM = """
import json, logging, os, sys
import trio
from agentvisor.supervise.process import LaunchSpec, open_launcher

logging.basicConfig(level=logging.WARNING)  # the guard's warnings, on stderr


def spec(argv):
    return LaunchSpec(argv=tuple(argv), env=dict(os.environ), cwd="/")


def say(**fields):
    print(json.dumps(fields), flush=True)


async def main(mode, argv):
    async with open_launcher() as launcher:
        if mode == "reuse":  # a worker that ends, and is closed, first
            ended = await launcher.spawn(spec([sys.executable, "-c", "pass"]))
            await ended.wait()
            ended.close()
            say(ended=ended.pgid)
        child = await launcher.spawn(spec(argv))
        # Wait for its first line: a child still starting would die of EPIPE on
        # its first print once we are gone, and pass a test for the wrong reason.
        said = (await child.stdout.receive_some()).decode()
        say(child=child.pid, guard=launcher.guard_pid, said=said)
        if mode == "restart":  # tell the test about the next guard
            first = launcher.guard_pid
            while launcher.guard_pid in (first, None):
                await trio.sleep(0.01)
            say(guard=launcher.guard_pid)
        await trio.sleep_forever()


trio.run(main, sys.argv[1], sys.argv[2:])
"""


@asynccontextmanager
async def agentvisor_like(
    tmp_path: Path, mode: str, *child: str
) -> AsyncIterator[tuple[ProcessHandle, LineReader]]:
    """A Python program that uses open_launcher() to run ``child``, as agentvisor does.

    Yields its handle and a reader of its JSON lines. Whatever the test left
    running (the child's group, a grandchild, a guard) is killed at the end.
    """
    program = tmp_path / "parent.py"
    program.write_text(PARENT_PROGRAM)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    spec = LaunchSpec((sys.executable, str(program), mode, *child), env=env, cwd=str(REPO))
    pids: list[int] = []
    async with open_launcher() as launcher, running(launcher, spec) as parent:
        reader = LineReader(parent.stdout)
        real_json = reader.json

        async def json_noting_pids() -> Any:
            fields = await real_json()
            pids.extend(v for k, v in fields.items() if k in ("child", "guard"))
            return fields

        reader.json = json_noting_pids  # type: ignore[method-assign]
        try:
            yield parent, reader
        finally:
            for pid in pids:  # only when the test fails: leave no orphan behind
                if _is_running(pid):
                    os.kill(pid, signal.SIGKILL)


async def test_sigkill_of_agentvisor_kills_its_children(tmp_path: Path) -> None:
    async with agentvisor_like(tmp_path, "plain", *child_argv("sleeper.py")) as (parent, out):
        with trio.fail_after(DEADLINE):
            child = (await out.json())["child"]
        assert _is_running(child)
        os.kill(parent.pid, signal.SIGKILL)
        with trio.fail_after(DEADLINE):
            assert await parent.wait() == -signal.SIGKILL
            await wait_gone(child)


async def test_sigkill_of_agentvisor_kills_a_grandchild_in_the_workers_group(
    tmp_path: Path,
) -> None:
    async with agentvisor_like(tmp_path, "plain", *child_argv("spawner.py")) as (parent, out):
        with trio.fail_after(DEADLINE):
            grandchild = json.loads((await out.json())["said"])["grandchild"]
        assert os.getpgid(grandchild) != grandchild  # in the worker's group
        os.kill(parent.pid, signal.SIGKILL)
        with trio.fail_after(DEADLINE):
            await wait_gone(grandchild)


async def test_sigkill_of_agentvisor_kills_a_grandchild_that_left_the_group(
    tmp_path: Path,
) -> None:
    # issue 11: a setsid() grandchild survived; the guard finds it by its spawn tag.
    argv = child_argv("spawner.py", "--new-session")
    async with agentvisor_like(tmp_path, "plain", *argv) as (parent, out):
        with trio.fail_after(DEADLINE):
            grandchild = json.loads((await out.json())["said"])["grandchild"]
        assert os.getsid(grandchild) == grandchild  # a group kill cannot reach it
        try:
            os.kill(parent.pid, signal.SIGKILL)
            with trio.fail_after(DEADLINE):
                await wait_gone(grandchild)
        finally:
            if _is_running(grandchild):
                os.kill(grandchild, signal.SIGKILL)


async def test_the_guard_has_its_own_session_and_outlives_a_ctrl_c_until_eof(
    tmp_path: Path,
) -> None:
    async with agentvisor_like(tmp_path, "plain", *child_argv("sleeper.py")) as (parent, out):
        with trio.fail_after(DEADLINE):
            started = await out.json()
        guard = started["guard"]
        assert os.getsid(guard) == os.getpgid(guard) == guard != os.getsid(parent.pid)
        ignored = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
        # Spawned with them blocked, the guard ignores them before it reads its pipe.
        assert ignored <= blocked_signals(guard) | ignored_signals(guard)
        with trio.fail_after(DEADLINE):
            while not ignored <= ignored_signals(guard):
                await trio.sleep(0.01)
        for sig in ignored:
            os.kill(guard, sig)  # an ignored signal is discarded as it is sent
        assert _is_running(guard)
        os.killpg(parent.pgid, signal.SIGINT)  # Ctrl-C: agentvisor's group only
        with trio.fail_after(DEADLINE):
            await parent.wait()  # KeyboardInterrupt, after leaving open_launcher()
            await wait_gone(started["child"])  # killed by the guard at EOF
            await wait_gone(guard)


async def test_a_worker_group_that_ended_is_not_killed_again(tmp_path: Path) -> None:
    async with agentvisor_like(tmp_path, "reuse", *child_argv("sleeper.py")) as (parent, out):
        with trio.fail_after(DEADLINE):
            ended = (await out.json())["ended"]
            child = (await out.json())["child"]
        os.kill(parent.pid, signal.SIGKILL)
        with trio.fail_after(DEADLINE):
            await wait_gone(child)
            report = await LineReader(parent.stderr).line()  # the guard's stderr is its
    assert report == f"agentvisor guard: agentvisor is gone; SIGKILLed process groups {child}"
    assert str(ended) not in report.split()


async def test_a_killed_guard_is_replaced_and_told_the_live_workers(tmp_path: Path) -> None:
    async with agentvisor_like(tmp_path, "restart", *child_argv("sleeper.py")) as (parent, out):
        with trio.fail_after(DEADLINE):
            started = await out.json()
            os.kill(started["guard"], signal.SIGKILL)
            replaced = await out.json()
            warning = await LineReader(parent.stderr).line()
        assert replaced["guard"] != started["guard"]
        assert f"(pid {started['guard']} killed by SIGKILL); starting another" in warning
        os.kill(parent.pid, signal.SIGKILL)
        with trio.fail_after(DEADLINE):
            await wait_gone(started["child"])
            await wait_gone(replaced["guard"])
