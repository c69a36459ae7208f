"""systemd's notify protocol (sd_notify(3)), without libsystemd.

``notify("READY=1")`` sends one datagram to ``$NOTIFY_SOCKET`` (a path, or an
abstract socket name starting with ``@``). Everything is a no-op that returns
False when agentvisor does not run under a ``Type=notify`` unit, so callers
never need to check.
"""

from __future__ import annotations

import logging
import os
import socket

import trio

log = logging.getLogger("agentvisor.sdnotify")


def _address() -> str | None:
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return None
    if address.startswith("@"):
        return "\0" + address[1:]  # abstract namespace
    return address


def notify(*states: str) -> bool:
    """Send ``states`` (``"READY=1"``, ``"STATUS=…"``…) as one message; True when sent."""
    address = _address()
    if address is None or not states:
        return False
    message = "\n".join(states).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message)
    except OSError as error:
        log.warning("cannot notify systemd at %s: %s", os.environ.get("NOTIFY_SOCKET"), error)
        return False
    return True


def watchdog_interval() -> float | None:
    """Seconds between ``WATCHDOG=1`` pings (half of ``WATCHDOG_USEC``), or None when off."""
    usec = os.environ.get("WATCHDOG_USEC")
    if not usec or _address() is None:
        return None
    watchdog_pid = os.environ.get("WATCHDOG_PID")
    if watchdog_pid and watchdog_pid != str(os.getpid()):
        return None  # meant for another process (our parent, say)
    try:
        value = int(usec)
    except ValueError:
        log.warning("ignoring WATCHDOG_USEC=%r: not an integer", usec)
        return None
    return value / 2 / 1_000_000 if value > 0 else None


async def run_watchdog(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Ping systemd's watchdog every ``watchdog_interval()`` while the event loop runs.

    Returns at once when the watchdog is not enabled.
    """
    interval = watchdog_interval()
    task_status.started()
    if interval is None:
        return
    log.debug("systemd watchdog enabled: pinging every %.3gs", interval)
    while True:
        notify("WATCHDOG=1")
        await trio.sleep(interval)
