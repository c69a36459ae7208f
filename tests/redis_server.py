"""A real ``redis-server`` of the test's own (Debian's package; ``make test`` installs it).

No persistence, bound to 127.0.0.1 on a free port above the kernel's
ephemeral range (redis-server has no "any port" of its own: ``--port 0``
turns TCP off). Port 0 would hand out an ephemeral port, which any client
socket or agent worker of the other tests may take while the test restarts
Redis on it; above that range only the tests' other Redis servers look. A
start that loses its port anyway is retried on another. Stopped by its PID.
Never 6379.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from attrs import define

START_TIMEOUT = 10.0


def _ephemeral_high() -> int:
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        return int(text.split()[1])
    except (OSError, ValueError, IndexError):
        return 60999  # Linux's default


def free_port() -> int:
    """A port free on 127.0.0.1 now, above the ephemeral range when there is room."""
    high = _ephemeral_high()
    for _ in range(50 if high < 64535 else 0):
        port = random.randint(high + 1, 65535)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@define
class RedisServer:
    port: int
    directory: Path
    #: More ``redis-server`` options (``--replicaof``, ``--cluster-enabled`` …).
    extra: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, decode_responses=True, socket_timeout=5)

    def start(self) -> None:
        """Start on ``port`` and wait until it answers PING; ``RuntimeError`` if it exits."""
        log = open(self.directory / "redis.log", "ab")  # noqa: SIM115 -- the child holds it
        with log:
            self.process = subprocess.Popen(
                [
                    "redis-server",
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.directory),
                    *self.extra,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        client = self.client()
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"redis-server exited with {self.process.returncode}")
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    time.sleep(0.02)
        finally:
            client.close()
        raise RuntimeError("redis-server did not answer PING")

    def stop(self) -> None:
        """SIGKILL it by its PID (a crash, as far as the clients can tell) and reap it."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(5)
        self.process = None


@contextmanager
def running_redis(directory: Path, extra: tuple[str, ...] = ()) -> Iterator[RedisServer]:
    directory.mkdir(parents=True, exist_ok=True)
    server = None
    for _ in range(5):
        server = RedisServer(free_port(), directory, extra)
        try:
            server.start()
            break
        except RuntimeError:  # the port was taken between the probe and the start
            server.stop()
            server = None
    if server is None:
        raise RuntimeError(f"redis-server would not start; see {directory / 'redis.log'}")
    try:
        yield server
    finally:
        server.stop()
