"""Descendants that leave their worker's process group (setsid) are stopped with it (issue 11).

Each worker here is ``spawner.py --new-session``: it starts a grandchild in a
session of its own, which a group signal cannot reach, and which holds the
worker's stdout open.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psutil
import trio

from agentvisor.supervise.process import OSProcess, open_launcher
from tests.children import LineReader, child_spec, running, wait_gone

DEADLINE = 10
#: A grandchild that ignores SIGTERM, as a careless daemon does.
STUBBORN = (
    sys.executable,
    "-c",
    "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(3600)",
)


@asynccontextmanager
async def escaped(grandchild: tuple[str, ...]) -> AsyncIterator[tuple[OSProcess, int]]:
    """A worker whose grandchild runs ``grandchild`` in a session of its own, and its pid."""
    spec = child_spec("spawner.py", "--new-session", "--", *grandchild)
    async with open_launcher() as launcher, running(launcher, spec) as child:
        with trio.fail_after(DEADLINE):
            pid = (await LineReader(child.stdout).json())["grandchild"]
        assert isinstance(child, OSProcess)
        yield child, pid


async def exists(pid: int) -> bool:
    """Whether ``pid`` is still a process table entry (a zombie too)."""
    return psutil.pid_exists(pid)


async def test_a_group_signal_reaches_a_grandchild_in_its_own_session() -> None:
    async with escaped(STUBBORN) as (child, grandchild):
        with trio.fail_after(DEADLINE):
            assert os.getsid(grandchild) == grandchild  # out of the worker's group
            child.kill_group()
            assert await child.wait() == -signal.SIGKILL
            await wait_gone(grandchild)


async def test_an_orphaned_grandchild_stays_in_agentvisors_tree_and_dies_with_its_worker() -> None:
    async with escaped(STUBBORN) as (child, grandchild):
        with trio.fail_after(DEADLINE):
            os.kill(child.pid, signal.SIGKILL)  # the worker alone dies: an orphan
            await child.wait()
            # re-parented to agentvisor (child subreaper), not to init
            assert psutil.Process(grandchild).ppid() == os.getpid()
            child.kill_group()  # what an instance does after its worker exits
            await wait_gone(grandchild)


async def test_an_orphan_that_exits_is_reaped_not_left_a_zombie() -> None:
    brief = (sys.executable, "-c", "import time; time.sleep(0.3)")
    async with escaped(brief) as (child, grandchild):
        with trio.fail_after(DEADLINE):
            os.kill(child.pid, signal.SIGKILL)
            await child.wait()
            while await exists(grandchild):  # its SIGCHLD comes to agentvisor
                await trio.sleep(0.02)


async def test_a_stop_ends_when_the_worker_does_though_its_grandchild_ignores_sigterm() -> None:
    async with escaped(STUBBORN) as (child, grandchild):
        with trio.fail_after(DEADLINE):
            child.signal_group(signal.SIGTERM)  # the worker dies of it, the grandchild not
            assert await child.wait() == -signal.SIGTERM
            assert await exists(grandchild)
            child.kill_group()
            await wait_gone(grandchild)
            assert await child.stdout.receive_some() == b""  # nobody holds the pipe now
