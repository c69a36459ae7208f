"""The sessions of one worker: requests from connections, turns, limits, expiry, shutdown.

``SessionManager.handle`` acts on one parsed request from one connection.
Turns of different sessions run concurrently as tasks of the manager's own
task group (sessions outlive connections); turns of one session run one at a
time, and ``on_busy`` decides what a message that arrives during a turn
does: wait its turn (``queue``), get ``SESSION_BUSY`` (``reject``), or cancel
the running turn and start (``interrupt``).

Replies to a request that are not part of a session's event stream (errors
about the request, ``agent.session_resumed``, ``pong``) go to the requesting
connection and carry no ``seq``; everything else is a session event, numbered
and kept for replay. A turn whose worker died is taken back in
``agentvisor.worker.takeback``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup, TaskStatus
from attrs import field, frozen

from agentvisor.agent.types import Agent
from agentvisor.config.model import OnBusy
from agentvisor.worker.poison import NO_DEATHS, Deaths
from agentvisor.worker.protocol import (
    Cancel,
    CloseReason,
    CloseSession,
    CreateSession,
    ErrorCode,
    MessageId,
    Ping,
    Request,
    ResumeSession,
    UserMessage,
    encode_event,
    error_fields,
    stamp,
)
from agentvisor.worker.session import Outbox, Session, Turn
from agentvisor.worker.stats import WorkerStats
from agentvisor.worker.store import SessionStore, StoreError
from agentvisor.worker.takeback import after_restore, load_judged, take_back_turn
from agentvisor.worker.turns import TurnRunner, utc_timestamp

log = logging.getLogger("agentvisor.worker")


@frozen
class SessionSettings:
    max_sessions: int = 100
    session_timeout: float = 1800.0
    on_busy: OnBusy = field(default=OnBusy.QUEUE, converter=OnBusy)
    replay_limit: int = 500  # events kept per session for resume
    max_queued: int = 100  # messages waiting behind a running turn (on_busy = queue)


def idle_expired(sessions: Iterable[Session], now: float, timeout: float) -> list[Session]:
    """Sessions without a running or queued turn whose last activity is ``timeout`` old."""
    return [s for s in sessions if not s.closed and not s.busy and now - s.last_activity >= timeout]


def sweep_interval(timeout: float) -> float:
    """How often to look for expired sessions: a tenth of the timeout, within [20 ms, 5 s]."""
    return min(max(timeout / 10, 0.02), 5.0)


class SessionManager:
    def __init__(
        self,
        agent: Agent,
        store: SessionStore,
        settings: SessionSettings,
        *,
        clock: Callable[[], float] = anyio.current_time,
        wall_clock: Callable[[], float] = time.time,
        timestamp: Callable[[], str] = utc_timestamp,
    ) -> None:
        self.settings = settings
        self.store = store
        self.sessions: dict[str, Session] = {}
        self.clock = clock
        self.wall_clock = wall_clock
        self.timestamp = timestamp
        self.stats = WorkerStats(started_at=clock())
        self.runner = TurnRunner(
            agent, store, self.stats, clock=clock, wall_clock=wall_clock, timestamp=timestamp
        )
        self.draining = False
        self._task_group: TaskGroup | None = None
        self._stopped = anyio.Event()

    # ------------------------------------------------------------ lifecycle

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Host the turns and the expiry sweeper until ``shutdown`` has finished."""
        async with anyio.create_task_group() as task_group:
            self._task_group = task_group
            task_group.start_soon(self._sweep)
            task_status.started()
            await self._stopped.wait()
            task_group.cancel_scope.cancel()
        self._task_group = None

    def _spawn(self, function: Callable[..., Any], *args: Any) -> None:
        if self._task_group is None:
            raise RuntimeError("SessionManager.run is not running")
        self._task_group.start_soon(function, *args)

    async def shutdown(self, drain_timeout: float) -> None:
        """Refuse new work, let running turns finish for up to ``drain_timeout``, cancel the
        rest and save every session that changed; each stays in the store for another
        replica to resume (no ``session_closed``: the session is not over)."""
        self.draining = True
        for session in self.sessions.values():
            self._drop_queue(session, shutting_down=True)
        with anyio.move_on_after(drain_timeout):
            for turn in self._running_turns():
                await turn.done.wait()
        turns = self._running_turns()
        for turn in turns:
            turn.cancel(CloseReason.SHUTDOWN.value)
        with anyio.move_on_after(drain_timeout):
            for turn in turns:
                await turn.done.wait()
        # The sessions are not closed: they stay in the shared store and the client
        # (through the router, after the 1012 close) resumes them on another replica.
        # Only what changed is saved: a session already moved to another replica is
        # that replica's now, and a stale copy written back would number events twice.
        sessions = list(self.sessions.values())
        for session in sessions:
            if session.connection is not None:
                session.detach(session.connection)
        async with anyio.create_task_group() as task_group:
            for session in sessions:
                if session.unsaved:
                    task_group.start_soon(self.runner.save_bounded, session)
        self.sessions.clear()
        self._stopped.set()

    def _running_turns(self) -> list[Turn]:
        return [s.turn for s in self.sessions.values() if s.turn is not None]

    def statistics(self) -> dict[str, Any]:
        queued = sum(len(s.queue) for s in self.sessions.values() if s.queue)
        idle = sum(1 for s in self.sessions.values() if s.unused)
        return self.stats.snapshot(
            active_sessions=len(self.sessions),
            queued_turns=queued,
            now=self.clock(),
            in_use_sessions=len(self.sessions) - idle,
        )

    # ------------------------------------------------------------ requests

    async def handle(self, request: Request, connection: Outbox) -> None:
        match request:
            case Ping():
                self._reply(connection, {"event": "pong"})
            case UserMessage():
                await self._message(request, connection)
            case CreateSession(metadata=metadata):
                if self._refuse_when_draining(connection, None, None):
                    return
                await self._create(connection, metadata, None)
            case ResumeSession():
                await self._resume(request, connection)
            case Cancel(session_id=session_id):
                await self._cancel(session_id, connection)
            case CloseSession(session_id=session_id):
                session = await self._find(session_id, connection)
                if session is not None:
                    session.attach(connection)
                    self._spawn(self._close, session, CloseReason.CLIENT)

    def disconnect(self, connection: Outbox) -> None:
        """The connection is gone: its sessions live on, their events stay in the buffer."""
        for session_id in list(connection.attached):
            session = self.sessions.get(session_id)
            if session is not None:
                session.detach(connection)
        connection.attached.clear()

    def _reply(self, connection: Outbox, fields: Mapping[str, Any]) -> None:
        connection.push(encode_event(stamp(fields, self.timestamp())))

    def _error(
        self,
        connection: Outbox,
        code: ErrorCode,
        message: str,
        session_id: str | None = None,
        message_id: MessageId | None = None,
    ) -> None:
        fields = error_fields(code, message, session_id=session_id, message_id=message_id)
        self._reply(connection, fields)

    def _refuse_when_draining(
        self, connection: Outbox, session_id: str | None, message_id: MessageId | None
    ) -> bool:
        if self.draining:
            self._error(
                connection,
                ErrorCode.SHUTTING_DOWN,
                "this worker is shutting down; reconnect to resume the session elsewhere",
                session_id,
                message_id,
            )
        return self.draining

    async def _at_limit(
        self, connection: Outbox, session_id: str | None, message_id: MessageId | None
    ) -> bool:
        """At ``max_sessions``, make room by letting go of the idlest session no client is
        attached to (it stays in the store: any replica resumes it from there); refuse with
        ``SESSION_LIMIT`` only when every session held here is in use."""
        limit = self.settings.max_sessions
        while len(self.sessions) >= limit:
            idle = [s for s in self.sessions.values() if s.unused]
            if not idle:
                break
            session = min(idle, key=lambda s: s.last_activity)
            if not await self.runner.save(session):
                break  # not in the store: keep it
            if self.sessions.get(session.id) is session and session.unused:
                del self.sessions[session.id]
                log.info("session %s let go to make room (still in the store)", session.id)
        if len(self.sessions) < limit:
            return False
        self._error(
            connection,
            ErrorCode.SESSION_LIMIT,
            f"this worker holds its maximum of {limit} sessions; close one or try later",
            session_id,
            message_id,
        )
        return True

    async def _create(
        self, connection: Outbox, metadata: Mapping[str, Any], message_id: MessageId | None
    ) -> Session | None:
        if await self._at_limit(connection, None, message_id):
            return None
        session = Session.new(
            str(uuid.uuid4()),
            metadata,
            replay_limit=self.settings.replay_limit,
            now=self.clock(),
        )
        self.sessions[session.id] = session
        self.stats.sessions_total += 1
        session.attach(connection)
        session.emit({"event": "agent.session_created"}, self.timestamp(), commit=False)
        await self.runner.save(session)  # stored before the client learns its id
        session.commit()
        return session

    async def _find(
        self,
        session_id: str,
        connection: Outbox,
        message_id: MessageId | None = None,
        last_seq: int = 0,
    ) -> Session | None:
        """The session in memory, or loaded from the store (another replica's, or expired
        here); replies ``SESSION_NOT_FOUND`` / ``SESSION_LIMIT`` and returns None if neither."""
        session = self.sessions.get(session_id)
        if session is not None and not session.unused:
            return session
        if session is None and self._refuse_when_draining(connection, session_id, message_id):
            return None
        stored, judged = await load_judged(self.store, session_id)
        held = session
        session = self.sessions.get(session_id)  # loaded by another request meanwhile?
        if session is not None and (
            session is not held
            or stored is None
            or not session.unused
            or not session.behind(stored)
        ):
            return session  # ours is current: the conversation went on nowhere else
        if session is not None:
            # Its client moved on to another replica (a drain, a failover) and came back:
            # the store holds turns this copy never saw.
            del self.sessions[session_id]
            log.info("session %s went on elsewhere; reloading it from the store", session_id)
        timeout = self.settings.session_timeout
        if stored is not None and stored.updated_at < self.wall_clock() - timeout:
            stored = None  # expired while no worker held it
        if stored is None:
            self._error(
                connection,
                ErrorCode.SESSION_NOT_FOUND,
                f"no session {session_id!r} on this worker or in its store (closed or expired)",
                session_id,
                message_id,
            )
            return None
        if await self._at_limit(connection, session_id, message_id):
            return None
        session = Session.restore(
            stored, replay_limit=self.settings.replay_limit, now=self.clock(), last_seq=last_seq
        )
        self.sessions[session_id] = session
        self.stats.sessions_total += 1
        if stored.open_turn is not None:  # its worker died during a turn
            take_back_turn(session, stored.open_turn, judged=judged)
        await self.runner.save(session)  # claims it: marks it fresh for the other replicas
        log.info(
            "session %s resumed from the store (%d messages)", session_id, len(session.history)
        )
        return session

    def _after_restore(self, session: Session) -> None:
        """Once the session is attached again: report or resume the turn its worker died in."""
        request = after_restore(session, self.timestamp())
        if request is not None:
            self._start_turn(session, request, deaths=session.interrupted_deaths)

    async def _resume(self, request: ResumeSession, connection: Outbox) -> None:
        session = await self._find(request.session_id, connection, last_seq=request.last_seq)
        if session is None:
            return
        session.last_activity = self.clock()
        replayed = session.replay(connection, request.last_seq)
        self._reply(
            connection,
            {
                "event": "agent.session_resumed",
                "session_id": session.id,
                "replayed": replayed,
                "history_length": len(session.history),
                "last_seq": session.committed_seq,
            },
        )
        self._after_restore(session)

    async def _message(self, request: UserMessage, connection: Outbox) -> None:
        message_id = request.message_id
        if self._refuse_when_draining(connection, request.session_id, message_id):
            return
        session: Session | None
        if request.session_id is None:
            session = await self._create(connection, {}, message_id)
        else:
            session = await self._find(request.session_id, connection, message_id)
        if session is None or session.closed:
            return
        if self._refuse_when_draining(connection, session.id, message_id):
            return
        session.attach(connection)
        session.last_activity = self.clock()
        copy = session.knows(message_id)  # before a turn taken back is resumed
        self._after_restore(session)
        if copy:
            log.info("session %s: message %r again; not run again", session.id, message_id)
            return
        if not session.busy:
            self._start_turn(session, request)
        elif self.settings.on_busy is OnBusy.REJECT:
            self._error(
                connection,
                ErrorCode.SESSION_BUSY,
                "a turn is running in this session; wait for its end or cancel it",
                session.id,
                message_id,
            )
        elif self.settings.on_busy is OnBusy.INTERRUPT:
            self._drop_queue(session, reason="interrupt")
            session.queue = deque([request])
            if session.turn is not None:
                session.turn.cancel("interrupt")
        else:
            queue = session.queue if session.queue is not None else deque()
            if len(queue) >= self.settings.max_queued:
                self._error(
                    connection,
                    ErrorCode.SESSION_BUSY,
                    f"{len(queue)} messages are already waiting in this session",
                    session.id,
                    message_id,
                )
                return
            queue.append(request)
            session.queue = queue

    async def _cancel(self, session_id: str, connection: Outbox) -> None:
        session = self.sessions.get(session_id)
        if session is None:
            self._error(
                connection,
                ErrorCode.SESSION_NOT_FOUND,
                f"no session {session_id!r} on this worker",
                session_id,
            )
            return
        session.attach(connection)
        session.last_activity = self.clock()
        if session.turn is not None:
            session.turn.cancel("user")  # messages queued behind it still run
        else:  # the turn ended before the cancel came, or none ever ran
            self._error(
                connection,
                ErrorCode.NO_TURN_RUNNING,
                f"no turn is running in session {session_id!r}; nothing to cancel",
                session_id,
            )
        await anyio.lowlevel.checkpoint()

    # ------------------------------------------------------------ turns

    def _start_turn(
        self, session: Session, request: UserMessage, *, deaths: Deaths = NO_DEATHS
    ) -> None:
        turn = Turn(request, started_at=self.clock(), deaths=deaths)
        session.turn = turn
        self._spawn(self._turn_task, session, turn)

    async def _turn_task(self, session: Session, turn: Turn) -> None:
        try:
            await self.runner.run(session, turn)
        finally:
            session.turn = None
            session.last_activity = self.clock()
            turn.done.set()
        if session.queue and not session.closed and not self.draining:
            self._start_turn(session, session.queue.popleft())

    def _drop_queue(
        self, session: Session, *, reason: str = "", shutting_down: bool = False
    ) -> None:
        """End each waiting message's turn before it started (cancelled, or SHUTTING_DOWN)."""
        queue, session.queue = session.queue, None
        for request in queue or ():
            extra = {} if request.message_id is None else {"message_id": request.message_id}
            if shutting_down:
                fields = error_fields(
                    ErrorCode.SHUTTING_DOWN,
                    "this worker is shutting down; send the message again after resuming",
                    message_id=request.message_id,
                )
            else:
                fields = {"event": "agent.cancelled"} | extra | {"reason": reason}
            session.emit(fields, self.timestamp())

    # ------------------------------------------------------------ ending sessions

    def _closed_fields(self, reason: CloseReason) -> dict[str, Any]:
        return {"event": "agent.session_closed", "reason": reason.value}

    async def _close(self, session: Session, reason: CloseReason) -> None:
        """End a session for good: cancel its turn, tell its client, delete it from the store."""
        if session.closed:
            return
        session.closed = True
        if self.sessions.get(session.id) is session:
            del self.sessions[session.id]
        self._drop_queue(session, reason="close")
        turn = session.turn
        if turn is not None:
            turn.cancel("close")
            await turn.done.wait()
        session.emit(self._closed_fields(reason), self.timestamp())
        if session.connection is not None:
            session.detach(session.connection)
        self.stats.sessions_completed += 1
        try:
            await self.store.delete(session.id)
        except StoreError as error:
            log.error("session %s not deleted from the store: %s", session.id, error)

    async def _sweep(self) -> None:
        """Close idle sessions after ``session_timeout``; drop abandoned ones from the store."""
        timeout = self.settings.session_timeout
        interval = sweep_interval(timeout)
        store_every = max(timeout, 60.0)
        last_store_sweep = self.clock()
        while True:
            await anyio.sleep(interval)
            now = self.clock()
            for session in idle_expired(self.sessions.values(), now, timeout):
                if not self.draining:
                    self._spawn(self._close, session, CloseReason.TIMEOUT)
            if now - last_store_sweep >= store_every:
                last_store_sweep = now
                try:
                    expired = await self.store.expire(self.wall_clock() - 2 * timeout)
                except StoreError as error:
                    log.error("session store sweep failed: %s", error)
                else:
                    if expired:
                        log.info("removed %d abandoned sessions from the store", expired)
