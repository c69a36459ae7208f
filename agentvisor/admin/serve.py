"""Serve the admin app with Hypercorn's trio worker on every ``[admin] bind``.

TCP binds are ``host:port`` (port 0 = any; the real port is reported).
``unix:PATH`` binds are created here, not by Hypercorn: the socket is bound
and chmod 0600 before it listens, so nobody can connect while it is more
open than that, then handed to Hypercorn as ``fd://N``. A stale socket file
is removed first; a live one (another agentvisor) is an error; the file is
removed on exit.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
import stat
from typing import TYPE_CHECKING

import trio
from hypercorn.config import Config as HyperConfig
from hypercorn.trio import serve

from agentvisor.admin.app import create_app
from agentvisor.errors import AgentvisorError

if TYPE_CHECKING:
    from agentvisor.admin.app import AdminDeps
    from agentvisor.config.model import AdminConfig

log = logging.getLogger("agentvisor.admin")

#: How long in-flight requests may finish once shutdown begins.
GRACEFUL_TIMEOUT = 3.0
#: Longest path ``sockaddr_un`` can hold on Linux (108 bytes with the NUL).
MAX_UNIX_PATH_BYTES = 107
#: A TCP client that takes none of our data for this long is cut off by the kernel
#: (``TCP_USER_TIMEOUT``, inherited by accepted sockets). Hypercorn writes under a
#: shield, so a client that keeps an event stream open without reading would
#: otherwise hold the graceful shutdown forever.
STALLED_CLIENT_TIMEOUT = 10.0


class AdminBindError(AgentvisorError):
    """An ``[admin] bind`` cannot be served as configured."""

    code = "ADMIN_BIND_FAILED"


def split_host_port(bind: str) -> tuple[str, int]:
    """``"127.0.0.1:8080"`` / ``"[::1]:8080"`` → host and port."""
    host, sep, port = bind.rpartition(":")
    if not sep or not host:
        raise AdminBindError(f"admin bind {bind!r} is not host:port or unix:PATH")
    try:
        number = int(port)
    except ValueError:
        raise AdminBindError(f"admin bind {bind!r} has no valid port") from None
    return host.strip("[]"), number


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(binds: tuple[str, ...] | list[str], token: str | None) -> None:
    """Refuse a TCP bind reachable from other hosts without a token."""
    if token:
        return
    for bind in binds:
        if bind.startswith("unix:"):
            continue
        host, _port = split_host_port(bind)
        if not is_loopback(host):
            raise AdminBindError(
                f"admin bind {bind!r} is reachable from other hosts but [admin] token is not "
                "set; set a token or bind to 127.0.0.1"
            )


def unix_path(bind: str, base_dir: str) -> str:
    return os.path.join(base_dir, bind.removeprefix("unix:"))


def _remove_stale_socket(path: str) -> None:
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise AdminBindError(f"admin socket path {path} exists and is not a socket; remove it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError as error:
        if error.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise
    else:
        raise AdminBindError(
            f"admin socket {path} is in use by a running process (another agentvisor?); "
            "stop it or use another bind"
        )
    finally:
        probe.close()
    log.info("removing stale admin socket %s", path)
    os.unlink(path)


def bind_unix_socket(path: str) -> socket.socket:
    """Bind ``path`` mode 0600, not yet listening (connects are refused until then)."""
    if len(os.fsencode(path)) > MAX_UNIX_PATH_BYTES:
        raise AdminBindError(
            f"admin socket path {path} is longer than {MAX_UNIX_PATH_BYTES} bytes; "
            "use a shorter unix: bind"
        )
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    _remove_stale_socket(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        os.chmod(path, 0o600)
    except BaseException:
        sock.close()
        raise
    return sock


def bind_tcp_socket(bind: str) -> socket.socket:
    """Bind ``host:port`` (not yet listening); port 0 lets the OS choose."""
    host, port = split_host_port(bind)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise AdminBindError(f"admin bind {bind!r}: cannot resolve {host!r} ({error})") from None
    family, type_, proto, _name, address = infos[0]
    sock = socket.socket(family, type_, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "TCP_USER_TIMEOUT"):  # Linux
            milliseconds = int(STALLED_CLIENT_TIMEOUT * 1000)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, milliseconds)
        sock.bind(address)
    except OSError as error:
        sock.close()
        raise AdminBindError(f"cannot listen on admin bind {bind!r}: {error.strerror}") from None
    return sock


class AdminServer:
    """The admin API as a part of the daemon's nursery.

    ``await nursery.start(server.run)`` returns the bound addresses
    (``http://127.0.0.1:PORT``, ``unix:/abs/admin.sock``) once every bind
    accepts connections, and stores them in ``deps.binds``; cancelling the task
    shuts the server down gracefully within ``GRACEFUL_TIMEOUT``.
    """

    def __init__(self, deps: AdminDeps, admin: AdminConfig, base_dir: str) -> None:
        self.deps = deps
        self.admin = admin
        self.base_dir = os.path.abspath(base_dir)

    def _hypercorn_config(self, fds: list[int]) -> HyperConfig:
        config = HyperConfig()
        config.bind = [f"fd://{fd}" for fd in fds]
        config.accesslog = None  # requests are not logged; errors are, by our handlers
        http_log = logging.getLogger("agentvisor.admin.http")
        if http_log.level == logging.NOTSET:
            # Hypercorn's info lines ("Running on … (CTRL + C to quit)") are noise here.
            http_log.setLevel(logging.WARNING)
        config.errorlog = http_log
        config.graceful_timeout = GRACEFUL_TIMEOUT
        config.include_server_header = False
        return config

    def _bind_all(self, fds: list[int], created: list[str]) -> None:
        for bind in self.admin.bind:
            if bind.startswith("unix:"):
                path = unix_path(bind, self.base_dir)
                sock = bind_unix_socket(path)
                created.append(path)
            else:
                sock = bind_tcp_socket(bind)
            fds.append(sock.detach())  # Hypercorn's socket object owns it once serving

    async def run(
        self, *, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        check_exposure(self.admin.bind, self.admin.token)
        self.deps.stopping = trio.Event()
        fds: list[int] = []
        created: list[str] = []
        try:
            self._bind_all(fds, created)
            app = create_app(self.deps)
            config = self._hypercorn_config(fds)
        except BaseException:
            for fd in fds:
                os.close(fd)
            _unlink_all(created)
            raise
        # From here Hypercorn owns the descriptors (it wraps them in socket objects).
        shutdown = trio.Event()
        # Hypercorn runs shielded so that our cancellation becomes its graceful
        # shutdown; the deadline set on the way out bounds that shield.
        shielded = trio.CancelScope(shield=True)

        async def serve_shielded(*, task_status: trio.TaskStatus[list[str]]) -> None:
            with shielded:
                await serve(app, config, shutdown_trigger=shutdown.wait, task_status=task_status)

        try:
            async with trio.open_nursery() as nursery:
                try:
                    await nursery.start(self.deps.health_checks.run, self.deps.supervisor.bus)
                    hyper_binds: list[str] = await nursery.start(serve_shielded)
                    binds = [public_bind(bind) for bind in hyper_binds]
                    self.deps.binds[:] = binds
                    log.debug("admin API listening on %s", ", ".join(binds))
                    task_status.started(binds)
                    await trio.sleep_forever()
                finally:
                    self.deps.stopping.set()
                    shutdown.set()
                    shielded.deadline = trio.current_time() + GRACEFUL_TIMEOUT + 1
        finally:
            _unlink_all(created)
            self.deps.binds[:] = []


def _unlink_all(paths: list[str]) -> None:
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def public_bind(bind: str) -> str:
    """Hypercorn reports unix sockets as ``http://unix:/path``; show ``unix:/path``."""
    return bind.removeprefix("http://") if bind.startswith("http://unix:") else bind
