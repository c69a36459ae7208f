"""The router: one front door for WebSocket clients, in the daemon's nursery.

``Router(supervisor, bus).run(task_status=...)`` listens on ``[router] bind``
(``wss://`` with ``tls_cert`` / ``tls_key``) and reports the bound addresses.
Each accepted socket is one task in the router's nursery that checks the
limits, reads the upgrade request (within ``handshake_timeout``), checks the
path and the origin, asks the rules and strategies for an instance, opens
the worker connection with the client's headers, answers the client's
upgrade with the worker's subprotocol and then relays (``relay.py``; steady
traffic is carried by the relay engine's thread, ``engine.py``) until either
side ends. Refusals after a valid upgrade are WebSocket closes with
the codes of PROTOCOL.md (1008 policy, 1013 try again), preceded by an
``error`` event, so that a browser sees why; a wrong path or a request that
is not an upgrade gets a plain HTTP error.

Settings are read from ``supervisor.config`` on every use, so a reload
changes routes, limits and timeouts for new connections at once (binds and
TLS need a restart, as the supervisor reports).
"""

from __future__ import annotations

import errno
import logging
import os
import random
import socket
import ssl
import time
import uuid
from collections import Counter

import trio
from attrs import evolve

from agentvisor.config.model import Config
from agentvisor.events import ConnectionOpened, ConnectionRefused, EventBus
from agentvisor.router import notices
from agentvisor.router.channels import (
    Channel,
    ChannelClosed,
    SocketChannel,
    StreamChannel,
    configure_socket,
)
from agentvisor.router.coldstart import ColdStart
from agentvisor.router.compression import Agreement, deflate_offers, negotiate
from agentvisor.router.engine import RelayEngine
from agentvisor.router.frames import (
    CLOSE_POLICY,
    CLOSE_TRY_AGAIN,
    OP_CLOSE,
    close_payload,
    encode_frame,
)
from agentvisor.router.handshake import (
    HandshakeError,
    UpgradeRequest,
    accept_response,
    error_response,
    parse_upgrade,
    read_head,
)
from agentvisor.router.lifecycle import RouterLifecycle
from agentvisor.router.listen import open_listener, origin_allowed, raise_fd_limit
from agentvisor.router.policy import Close, Ping, Policy
from agentvisor.router.relay import Connection
from agentvisor.router.routing import EndpointSource, Plan, Routing, endpoint_url
from agentvisor.router.rules import ClientInfo, Reject, Route
from agentvisor.router.table import ConnectionRecord, ConnectionStatus, ConnectionTable
from agentvisor.router.upstream import Refusal, Upstream, UpstreamFailed, open_upstream
from agentvisor.router.writer import await_close_reply

log = logging.getLogger("agentvisor.router")

#: Sockets beyond ``max_connections`` still given a proper 1013 close; past that, dropped.
REFUSAL_SLACK = 256
#: Wait between connection attempts to an instance that just failed.
RETRY_DELAY = 0.5


class Router(RouterLifecycle):
    """The WebSocket front door. One per daemon; lives in the daemon's nursery.

    ``failover_grace``: how long a client whose worker died may wait for
    another instance (or the restarted one) before ``UPSTREAM_LOST``.
    """

    def __init__(
        self,
        supervisor: EndpointSource,
        bus: EventBus,
        *,
        rng: random.Random | None = None,
        failover_grace: float = 5.0,
    ) -> None:
        self.supervisor = supervisor
        self.bus = bus
        self.failover_grace = failover_grace
        self.table = ConnectionTable()
        self.routing = Routing(supervisor, self.table, rng or random.Random())
        self.connections: dict[str, Connection] = {}
        self.draining: Counter[str] = Counter()
        self.binds: list[str] = []
        self.sockets = 0  # accepted sockets not yet closed (admitted or being refused)
        self.accepted = 0
        self.refused: Counter[str] = Counter()
        self.failovers = 0
        self.failover_failures = 0
        self.drain_moves = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.messages_in = 0
        self.messages_out = 0
        self.engine = RelayEngine()
        self.cold_start = ColdStart(self.routing, bus, self.draining)
        self._listeners: list[socket.socket] = []
        self._accepting: trio.CancelScope | None = None

    @property
    def config(self) -> Config:
        return self.routing.config

    # -- serving -------------------------------------------------------------------

    async def run(
        self, *, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen, accept and relay until cancelled; then close every client with 1001."""
        config = self.config
        tls = self._tls_context(config)
        raise_fd_limit(2 * config.router.max_connections + 2 * REFUSAL_SLACK + 64)
        scheme = "wss" if tls is not None else "ws"
        try:
            for bind in config.router.bind:
                listener = open_listener(bind)
                self._listeners.append(listener)
                host, port = listener.getsockname()[:2]
                shown = f"[{host}]" if ":" in host else host
                self.binds.append(f"{scheme}://{shown}:{port}")
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.engine.run)
                with trio.CancelScope() as accepting:
                    self._accepting = accepting
                    async with trio.open_nursery() as acceptors:
                        for listener in self._listeners:
                            acceptors.start_soon(self._accept_loop, listener, tls, nursery)
                        acceptors.start_soon(self._keepalive_loop, nursery)
                        task_status.started(list(self.binds))
                        log.info("router listening on %s", ", ".join(self.binds))
                await trio.sleep_forever()  # stopped accepting (shutdown): serve what is left
        finally:
            self._close_listeners()

    def _tls_context(self, config: Config) -> ssl.SSLContext | None:
        router = config.router
        if not router.tls_cert:
            return None
        cert = os.path.join(config.base_dir, router.tls_cert)
        key = os.path.join(config.base_dir, router.tls_key) if router.tls_key else None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        context.set_alpn_protocols(["http/1.1"])
        return context

    def _close_listeners(self) -> None:
        for listener in self._listeners:
            trio.lowlevel.notify_closing(listener)
            listener.close()
        self._listeners.clear()

    async def _accept_loop(
        self, listener: socket.socket, tls: ssl.SSLContext | None, nursery: trio.Nursery
    ) -> None:
        streak = 0
        while True:
            try:
                sock, address = listener.accept()
            except BlockingIOError:
                streak = 0
                await trio.lowlevel.wait_readable(listener)
                continue
            except OSError as error:
                if error.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.warning("router cannot accept: %s; retrying in 0.1 s", error.strerror)
                    await trio.sleep(0.1)
                continue  # ECONNABORTED and the like: that client is gone already
            self.sockets += 1
            nursery.start_soon(self._serve_socket, sock, address[0], tls)
            streak += 1
            if streak >= 64:
                streak = 0
                await trio.lowlevel.checkpoint()

    async def _serve_socket(self, sock: socket.socket, ip: str, tls: ssl.SSLContext | None) -> None:
        ip = ip.removeprefix("::ffff:") if "." in ip else ip
        config = self.config.router
        channel: Channel | None = None
        admitted = False
        try:
            if self.sockets > config.max_connections + REFUSAL_SLACK:
                self.refused["overload"] += 1
                sock.close()
                return
            configure_socket(sock, client=True)
            admission = self.routing.limits.admit(ip, trio.current_time())
            admitted = admission.admitted
            channel = SocketChannel(sock)
            with trio.move_on_after(config.handshake_timeout) as timer:
                if tls is not None:
                    stream = trio.SSLStream(
                        trio.SocketStream(trio.socket.from_stdlib_socket(sock)),
                        tls,
                        server_side=True,
                    )
                    await stream.do_handshake()
                    channel = StreamChannel(stream)
                head, rest = await read_head(channel)
            if timer.cancelled_caught:
                self._refused(ip, 408, "handshake timeout", None)
                return
            await self._upgrade(channel, ip, head, rest, admission.close_code, admission.reason)
        except (*ChannelClosed, EOFError, ssl.SSLError):
            pass  # the client left during the handshake
        except HandshakeError as refused:
            self._refused(ip, refused.status, refused.message, None)
            await self._answer_http(channel, refused.status, refused.message)
        except Exception:
            log.exception("router connection from %s failed", ip)
        finally:
            if admitted:
                self.routing.limits.release(ip)
            self.sockets -= 1
            if channel is not None:
                channel.close()
            else:
                sock.close()

    async def _answer_http(self, channel: Channel | None, status: int, message: str) -> None:
        if channel is None:
            return
        await self._answer_raw(channel, error_response(status, message))

    @staticmethod
    async def _answer_raw(channel: Channel, response: bytes) -> None:
        """Send an HTTP answer and end politely: half-close, then read what the client
        still sends (closing with unread bytes would reset the answer away)."""
        with trio.move_on_after(1):
            try:
                await channel.send(response)
            except ChannelClosed:
                return
            if isinstance(channel, SocketChannel):
                try:
                    channel.sock.shutdown(socket.SHUT_WR)
                except OSError:
                    return
            drained = 0
            while drained < 1024 * 1024:
                try:
                    data = await channel.recv()
                except ChannelClosed:
                    return
                if not data:
                    return
                drained += len(data)

    async def _upgrade(
        self,
        channel: Channel,
        ip: str,
        head: bytes,
        rest: bytes,
        refusal_code: int | None,
        refusal_reason: str,
    ) -> None:
        config = self.config.router
        request = parse_upgrade(head)
        if config.path != "*" and request.path != config.path:
            raise HandshakeError(404, f"no WebSocket endpoint at {request.path}; use {config.path}")
        client = ClientInfo.from_request(ip, request.target, request.headers)
        if refusal_code is not None:
            limited = notices.RATE_LIMITED if refusal_code == CLOSE_POLICY else None
            await self._refuse(channel, request, ip, refusal_code, refusal_reason, limited)
            return
        if not origin_allowed(client.origin, config.allowed_origins):
            reason = f"origin {client.origin} is not allowed"
            await self._refuse(channel, request, ip, CLOSE_POLICY, reason, notices.UNAUTHORIZED)
            return
        decision = self.routing.decide(client)
        if isinstance(decision, Reject):
            await self._refuse(
                channel, request, ip, CLOSE_POLICY, decision.reason, None, rule=decision.rule
            )
            return
        if not isinstance(decision, Route):
            code = CLOSE_POLICY if decision.code == notices.SERVICE_NOT_FOUND else CLOSE_TRY_AGAIN
            await self._refuse(channel, request, ip, code, decision.reason, decision.code)
            return
        plan = Plan(
            decision.rule,
            decision.agents,
            decision.strategy,
            self.routing.wraps(decision.rule),
            client,
            request,
            self.routing.speaks_agent_protocol(decision.agents),
        )
        not_started = await self.cold_start.wait(plan.agents)
        if not_started is not None:
            raise HandshakeError(503, not_started)
        connection_id = str(uuid.uuid4())
        policy = self.policy(plan)
        # permessage-deflate: a transparent backend answers the client's offers itself;
        # on other routes the router agrees on it with the client (compression.py).
        offer = request.header("sec-websocket-extensions") if config.compression else None
        passed = deflate_offers(offer) if policy.transparent else None
        with trio.move_on_after(config.handshake_timeout):
            opened = await self._open_first(plan, connection_id, ip, extensions=passed)
        if isinstance(opened, Refusal):
            # The worker refused the upgrade (403, 414, 431...): the client gets its answer.
            self._refused(ip, opened.status, "refused by the agent", plan.rule)
            await self._answer_raw(channel, opened.response)
            return
        if opened is None:
            reason = "no healthy instance of " + ", ".join(plan.agents)
            await self._refuse(
                channel, request, ip, CLOSE_TRY_AGAIN, reason, notices.NO_HEALTHY_SERVICE
            )
            return
        upstream, decided_by = opened
        if policy.transparent:
            agreed = Agreement(False, upstream.extensions) if upstream.extensions else None
        else:
            agreed = negotiate(offer)
        policy = evolve(policy, deflate=agreed)
        try:
            answer = accept_response(
                request.key, upstream.subprotocol, agreed.response if agreed else None
            )
            await channel.send(answer)
        except BaseException:
            upstream.channel.close()
            raise
        await self._relay(channel, ip, rest, plan, connection_id, upstream, decided_by, policy)

    def policy(self, plan: Plan) -> Policy:
        """What a connection routed by ``plan`` may do, from the router's settings now."""
        config = self.config.router
        return Policy.build(
            agent_protocol=plan.agent_protocol,
            router_notices=self.routing.router_notices(plan.agents),
            management_events=config.management_events,
            failover=config.failover,
            ping_interval=config.ping_interval,
            ping_timeout=config.ping_timeout,
            wrap=plan.wrap,
            max_message_bytes=config.max_message_bytes,
        )

    async def _open_first(
        self, plan: Plan, connection_id: str, ip: str, *, extensions: str | None = None
    ) -> tuple[Upstream, str] | Refusal | None:
        """Pick an instance (affinity first) and connect; another one if that fails.

        A worker's 4xx answer to the upgrade is returned as it is (head and
        body): that worker refused this client, and so would its replicas.
        """
        route = Route(plan.rule, plan.agents, plan.strategy)
        affinity = self.routing.affinity(plan.client)
        failed: set[str] = set()
        while True:
            candidates = [
                c
                for c in self.routing.candidates(plan.agents, self.draining)
                if c.instance_id not in failed
            ]
            selection = self.routing.select(route, plan.client, candidates, affinity=affinity)
            if selection is None:
                return None
            endpoint = self.routing.endpoint(selection.candidate.instance_id)
            if endpoint is None:
                failed.add(selection.candidate.instance_id)
                continue
            try:
                upstream = await open_upstream(
                    endpoint,
                    plan.request,
                    client_ip=ip,
                    connection_id=connection_id,
                    route=plan.route_label,
                    extensions=extensions,
                )
            except UpstreamFailed as failure:
                log.info("router: %s", failure)
                if failure.refusal is not None:
                    return failure.refusal
                failed.add(failure.instance_id)
                continue
            return upstream, selection.decided_by

    async def _relay(
        self,
        channel: Channel,
        ip: str,
        rest: bytes,
        plan: Plan,
        connection_id: str,
        upstream: Upstream,
        decided_by: str,
        policy: Policy,
    ) -> None:
        endpoint = upstream.endpoint
        now = time.time()
        self.table.add(
            ConnectionRecord(
                id=connection_id,
                client_ip=ip,
                agent=endpoint.service,
                instance_id=endpoint.instance_id,
                since=now,
                rule=plan.rule,
                strategy=decided_by,
            )
        )
        connection = Connection(
            self,
            connection_id=connection_id,
            client=channel,
            client_ip=ip,
            plan=plan,
            initial=rest,
            policy=policy,
        )
        self.connections[connection_id] = connection
        self.accepted += 1
        self.bus.publish(
            ConnectionOpened(
                connection_id,
                ip,
                endpoint.service,
                endpoint.instance_id,
                plan.rule,
                decided_by,
                now,
            )
        )
        routed = notices.connection_routed(
            service=endpoint.service,
            instance=endpoint.instance_id,
            endpoint=endpoint_url(endpoint),
            strategy=decided_by,
            rule=plan.rule,
            connection_id=connection_id,
        )
        await connection.perform(connection.core.routed(routed))
        await connection.run(upstream)

    async def _refuse(
        self,
        channel: Channel,
        request: UpgradeRequest,
        ip: str,
        code: int,
        reason: str,
        error_code: str | None,
        *,
        rule: str | None = None,
    ) -> None:
        """Accept the upgrade only to say why not: ``error`` event, then close ``code``."""
        self._refused(ip, code, reason, rule)
        frames = [accept_response(request.key)]
        if error_code is not None and self.config.router.management_events:
            frames.append(notices.error(error_code, reason, recoverable=code == CLOSE_TRY_AGAIN))
        frames.append(encode_frame(OP_CLOSE, close_payload(code, reason)))
        await channel.send(b"".join(frames))
        await await_close_reply(channel, parse=True)

    def _refused(self, ip: str, code: int, reason: str, rule: str | None) -> None:
        self.refused[str(code)] += 1
        self.bus.publish(ConnectionRefused(ip, code, reason, rule, time.time()))

    # -- keepalive -------------------------------------------------------------------

    async def _keepalive_loop(self, nursery: trio.Nursery) -> None:
        """Ping clients idle for ``ping_interval``; close those silent for ``ping_timeout`` more."""
        while True:
            router = self.config.router
            interval, timeout = router.ping_interval, router.ping_timeout
            await trio.sleep(min(1.0, max(0.05, min(interval, timeout) / 4)))
            now = time.monotonic()
            for connection in list(self.connections.values()):
                if connection.ended:
                    continue
                for action in connection.core.tick(now, blocked=connection.client_blocked):
                    if isinstance(action, Ping):
                        nursery.start_soon(self._ping, connection, timeout)
                    elif isinstance(action, Close):
                        connection.end(action.code, action.reason)

    @staticmethod
    async def _ping(connection: Connection, bound: float) -> None:
        with trio.move_on_after(bound):
            try:
                await connection.send_ping()
            except ChannelClosed:
                pass

    # -- connection events (called by connections) --------------------------------------

    def connection_finished(self, connection: Connection) -> None:
        self.connections.pop(connection.id, None)
        self.table.set_status(connection.id, ConnectionStatus.CLOSING)
        self.closed(connection, self.table.remove(connection.id))
