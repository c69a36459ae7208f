"""Tiny misbehaving programs for real-process tests, and how to drive them.

Each ``*.py`` here is a stand-alone script (stdlib, plus ``websockets`` for
ws_server.py) run with the test's own interpreter; its docstring says what it
does. The helpers below start one under a launcher and read its output.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from agentvisor.supervise.process import Launcher, LaunchSpec, ProcessHandle

CHILDREN = Path(__file__).resolve().parent


def child_argv(name: str, *args: str) -> tuple[str, ...]:
    """The command line that runs ``tests/children/<name>`` with ``args``."""
    return (sys.executable, str(CHILDREN / name), *args)


def child_spec(name: str, *args: str, cwd: str | None = None) -> LaunchSpec:
    """A LaunchSpec for a child with the test's environment and working directory."""
    return LaunchSpec(argv=child_argv(name, *args), env=dict(os.environ), cwd=cwd or os.getcwd())


class LineReader:
    """Reads whole lines from a byte stream (for the children's announcements)."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buffer = bytearray()

    async def line(self) -> str:
        """The next line without its newline; EOFError if the stream ends first."""
        while b"\n" not in self._buffer:
            chunk = await self._stream.receive_some()
            if not chunk:
                raise EOFError(f"stream ended; unterminated output: {bytes(self._buffer)!r}")
            self._buffer += chunk
        line, _, rest = self._buffer.partition(b"\n")
        self._buffer = bytearray(rest)
        return line.decode()

    async def json(self) -> Any:
        return json.loads(await self.line())


async def wait_gone(pid: int) -> None:
    """Return once ``pid`` has exited (a zombie counts as gone); any process, not only ours.

    A pidfd turns "is it gone yet?" into an event: it becomes readable on exit.
    """
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        await trio.lowlevel.wait_readable(pidfd)
    finally:
        trio.lowlevel.notify_closing(pidfd)
        os.close(pidfd)


@asynccontextmanager
async def running(launcher: Launcher, spec: LaunchSpec) -> AsyncIterator[ProcessHandle]:
    """Spawn a child; on the way out, SIGKILL its group, reap it, close it."""
    child = await launcher.spawn(spec)
    try:
        yield child
    finally:
        child.kill_group()
        with trio.move_on_after(5, shield=True):
            await child.wait()
        child.close()
