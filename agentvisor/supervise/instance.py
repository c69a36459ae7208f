"""Drives one instance: feeds events to the pure machine, carries out its actions.

One ``Instance.run`` task per instance lives in its service's nursery. It
owns the child process, the tasks reading its output, and its health checks.
Crashes are seen by awaiting the child (a pidfd), never by polling, and the
replacement is spawned in the same pass of the loop.
"""

from __future__ import annotations

import logging
import math
import random
import signal
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import attrs
import trio

from agentvisor.config.model import HealthConfig, HealthMode
from agentvisor.events import (
    EventBus,
    HealthChanged,
    HealthCheckCompleted,
    InstanceExited,
    InstanceStateChanged,
    LogLines,
    MessagePoisoned,
)
from agentvisor.supervise.health import CheckResult, check_http, check_websocket
from agentvisor.supervise.logs import LogBook, LogChunk, RotatingLogFile, pump_lines
from agentvisor.supervise.lostturns import LostTurn
from agentvisor.supervise.machine import (
    Event,
    Exited,
    HealthChecked,
    KillGroup,
    Machine,
    SignalGroup,
    Spawn,
    Spawned,
    SpawnFailed,
    Timer,
    death_counts,
    exit_cause,
    step,
)
from agentvisor.supervise.policy import Health, Policy
from agentvisor.supervise.process import Launcher, LaunchSpec, ProcessHandle, SpawnError
from agentvisor.supervise.registry import HealthView, InstanceView
from agentvisor.supervise.sampling import Sample
from agentvisor.supervise.states import ProcessState

log = logging.getLogger("agentvisor.instance")

_TROUBLE = frozenset({ProcessState.BACKOFF, ProcessState.FATAL})
_LIVE = frozenset({ProcessState.STARTING, ProcessState.RUNNING})

#: Where captured lines go beyond the ring and the files (the state store).
LineSink = Callable[[LogChunk], object]
#: After a worker's death: the turns that pid had in flight (agent workers' session store).
#: Its arguments: the pid, and whether the death counts against the turns (``death_counts``).
LostTurnReader = Callable[[int, bool], Awaitable[list[LostTurn]]]

#: At most one complaint about unwritable log files per instance this often (seconds).
COMPLAINT_INTERVAL = 60.0
#: First health check this long after spawn, then doubling up to ``interval`` until one passes.
FIRST_CHECK_DELAY = 0.05
#: How long output still in the pipes is read after the process exited.
OUTPUT_DRAIN_TIMEOUT = 2.0
STDERR_TAIL = 10  # last stderr lines of a process kept for `show`, the API and its exit event


def exit_reason(returncode: int, stderr_tail: Sequence[str]) -> str:
    """``exit status 1: ModuleNotFoundError: No module named 'x'`` / ``killed by SIGKILL``.

    The last non-blank stderr line is where Python puts the exception that ended it.
    """
    if returncode < 0:
        try:
            how = f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            how = f"killed by signal {-returncode}"
    else:
        how = f"exit status {returncode}"
    last = next((line.strip() for line in reversed(stderr_tail) if line.strip()), "")
    return f"{how}: {last}" if last else how


class InstanceLogs:
    """Where an instance's output goes: the service's ring, its files, maybe our stdout."""

    def __init__(
        self,
        book: LogBook,
        files: dict[str, RotatingLogFile],
        forward_prefix: str | None,
        bus: EventBus,
        sink: LineSink | None = None,
    ) -> None:
        self.book = book
        self.files = files
        self.forward_prefix = forward_prefix
        self.bus = bus
        self.sink = sink  # the state store, which keeps every line it can
        self._last_complaint = -math.inf

    def write(self, replica: int, stream: str, texts: Sequence[str]) -> None:
        """Keep the lines; a full disk or a closed stdout loses file lines, never the worker."""
        at = time.time()
        chunk = self.book.append(replica, stream, texts, at)
        if chunk:
            self.bus.publish(
                LogLines(chunk.service, replica, stream, chunk.first_seq, chunk.texts, at)
            )
            if self.sink is not None:
                self.sink(chunk)
        try:
            self.files[stream].write_lines(texts, at=at)
            if self.forward_prefix is not None:
                out = sys.stdout if stream == "stdout" else sys.stderr
                out.write("".join(f"{self.forward_prefix} {text}\n" for text in texts))
                out.flush()
        except OSError as error:
            if at - self._last_complaint >= COMPLAINT_INTERVAL:
                self._last_complaint = at
                log.error("cannot write the output of %s: %s", self.files[stream].path, error)

    def close(self) -> None:
        """Release the files until the next line (a stopped instance holds no descriptor)."""
        for file in self.files.values():
            file.close()


class InstanceGone(Exception):
    """The instance was removed (its task ended) while someone waited on it."""


class Instance:
    def __init__(
        self,
        *,
        service: str,
        replica: int,
        host: str,
        port: int | None,
        spec: LaunchSpec,
        policy: Policy,
        health: HealthConfig,
        ws_path: str,
        protocol_ping: bool,
        launcher: Launcher,
        bus: EventBus,
        logs: InstanceLogs,
        rng: random.Random | None = None,
        lost_turns: LostTurnReader | None = None,
    ) -> None:
        self.service = service
        self._lost_turns = lost_turns
        self.replica = replica
        self.host = host
        self.port = port
        self.spec = spec
        self.policy = policy
        self._health = health
        self._health_changed = trio.Event()
        self.ws_path = ws_path
        self.protocol_ping = protocol_ping
        self.machine = Machine()
        self.sample: Sample | None = None
        self.draining = False  # takes no new clients (rolling restart, scale-down, stop)
        self.sessions = 0  # active sessions last reported by the worker
        self.stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL)  # of the current/last process
        self.exit_reason = ""  # of the last process, once it exited
        self.worker_stats: dict[str, Any] | None = None  # the worker's GET /stats, agent workers
        self.last_check: CheckResult | None = None
        self.last_check_at: float | None = None
        self._launcher = launcher
        self._bus = bus
        self._logs = logs
        self._rng = rng or random.Random()
        self._handle: ProcessHandle | None = None
        self._generation = 0
        self._send, self._inbox = trio.open_memory_channel[tuple[int | None, Event]](math.inf)
        self._changed = trio.Event()
        self._queued = 0
        self._processed = 0
        self.closed = False
        self._nursery: trio.Nursery | None = None

    # Commands and queries ----------------------------------------------------

    @property
    def health(self) -> HealthConfig:
        return self._health

    @health.setter
    def health(self, health: HealthConfig) -> None:
        """Apply health settings live; wakes a checker that waits while checks are off."""
        self._health = health
        self._health_changed.set()
        self._health_changed = trio.Event()

    def send(self, event: Event) -> int:
        """Queue an event (start, stop, restart…); never blocks. Returns its ticket."""
        return self._enqueue(None, event)

    def send_to_process(self, event: Event) -> int:
        """Queue an event about the current process: dropped if that process is gone by then."""
        return self._enqueue(self._generation, event)

    def _enqueue(self, generation: int | None, event: Event) -> int:
        self._send.send_nowait((generation, event))
        self._queued += 1
        return self._queued

    async def wait_processed(self, ticket: int) -> None:
        """Return once the event with this ticket (and all before it) has been applied."""
        while self._processed < ticket:
            await self._wait_change()

    async def _wait_change(self) -> None:
        if self.closed:
            raise InstanceGone(f"{self.service}:{self.replica} was removed")
        await self._changed.wait()

    @property
    def state(self) -> ProcessState:
        return self.machine.state

    @property
    def pid(self) -> int | None:
        return self._handle.pid if self._handle is not None else None

    @property
    def accepts_clients(self) -> bool:
        """Running, not unhealthy, not draining: the router may send new clients here."""
        m = self.machine
        return (
            m.state is ProcessState.RUNNING
            and m.health.status is not Health.UNHEALTHY
            and not self.draining
        )

    async def wait_until(self, predicate: Callable[[Machine], bool]) -> None:
        """Return once ``predicate(machine)`` holds; the caller sets the deadline."""
        while not predicate(self.machine):
            await self._wait_change()

    def view(self) -> InstanceView:
        m = self.machine
        now, wall = trio.current_time(), time.time()
        uptime = m.uptime(now)
        started_at = wall - uptime if uptime is not None else None
        next_retry = wall + (m.deadline - now) if m.deadline is not None else None
        check = self.last_check
        sample = self.sample if self.pid is not None else None
        return InstanceView(
            service=self.service,
            replica=self.replica,
            state=m.state.value,
            host=self.host,
            port=self.port,
            pid=self.pid,
            started_at=started_at,
            uptime=uptime,
            restarts=m.restarts,
            failures=m.failures,
            exit_code=m.exit_code,
            next_retry_at=next_retry
            if m.state in (ProcessState.BACKOFF, ProcessState.FATAL)
            else None,
            reason=m.reason,
            health=HealthView(
                status=m.health.status.value if self.health.enabled else "disabled",
                last_check_at=self.last_check_at,
                response_time=check.response_time if check else None,
                message=check.message if check else "",
                consecutive_failures=m.health.failures,
            ),
            cpu_percent=sample.cpu_percent if sample else None,
            memory_bytes=sample.rss_bytes if sample else None,
            sessions=self.sessions if self.worker_stats is not None else None,
            exit_reason=self.exit_reason,
            stderr_tail=tuple(self.stderr_tail),
        )

    # The loop ----------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                while True:
                    deadline = self.machine.deadline
                    item: tuple[int | None, Event] | None = None
                    with trio.move_on_at(math.inf if deadline is None else deadline):
                        item = await self._inbox.receive()
                    if item is None:
                        await self._apply(Timer())
                        continue
                    generation, event = item
                    if generation is None or generation == self._generation:
                        await self._apply(event)
                    self._processed += 1
                    self._notify()
        finally:
            # Cancelled (shutdown past its deadline, or removal): leave no process behind.
            # (_watch's own cleanup closes the handle; the group dies with its SIGKILL.)
            if self._handle is not None:
                self._handle.kill_group()
                self._handle = None
            self._logs.close()
            self.closed = True
            self._notify()

    async def _apply(self, event: Event) -> None:
        old = self.machine
        new, actions = step(old, event, trio.current_time(), self.policy, self._rng)
        self.machine = new
        self._publish_changes(old, new)
        if isinstance(event, HealthChecked) and self.last_check is not None:
            check = self.last_check
            self._bus.publish(
                HealthCheckCompleted(
                    service=self.service,
                    replica=self.replica,
                    ok=check.ok,
                    status=new.health.status.value,
                    message=check.message,
                    response_time=check.response_time,
                    at=self.last_check_at or time.time(),
                )
            )
        for action in actions:
            match action:
                case Spawn():
                    await self._spawn()
                case SignalGroup(name):
                    if self._handle is not None:
                        self._handle.signal_group(signal.Signals[f"SIG{name}"])
                case KillGroup():
                    if self._handle is not None:
                        self._handle.kill_group()

    def _publish_changes(self, old: Machine, new: Machine) -> None:
        if (old.state, old.reason, old.pid) != (new.state, new.reason, new.pid):
            # A process that died on its own: a respawn straight from starting/running.
            died = old.state in _LIVE and new.state is ProcessState.STARTING and new.pid is None
            level = logging.WARNING if died or new.state in _TROUBLE else logging.INFO
            pid = f" pid {new.pid}" if new.pid else ""
            log.log(level, "%s:%d %s%s: %s", self.service, self.replica, new.state, pid, new.reason)
            self._bus.publish(
                InstanceStateChanged(
                    service=self.service,
                    replica=self.replica,
                    old=old.state.value,
                    new=new.state.value,
                    reason=new.reason,
                    pid=new.pid,
                    at=time.time(),
                )
            )
        if old.health.status is not new.health.status:
            check = self.last_check
            self._bus.publish(
                HealthChanged(
                    service=self.service,
                    replica=self.replica,
                    status=new.health.status.value,
                    message=check.message if check else "",
                    response_time=check.response_time if check else None,
                    at=time.time(),
                )
            )
        if old != new:
            self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def _spawn(self) -> None:
        assert self._nursery is not None
        self._generation += 1
        try:
            handle = await self._launcher.spawn(self.spec)
        except SpawnError as error:
            await self._apply(SpawnFailed(error.message))
            return
        self._handle = handle
        self.stderr_tail.clear()
        self.exit_reason = ""
        self._nursery.start_soon(self._watch, handle, self._generation)
        await self._apply(Spawned(handle.pid))

    async def _watch(self, handle: ProcessHandle, generation: int) -> None:
        """Read the process's output, check its health, and report its exit."""
        spawned_at = trio.current_time()
        exited: InstanceExited | None = None  # judged before Exited applies; stderr added last
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._pump, handle.stdout, "stdout")
                nursery.start_soon(self._pump, handle.stderr, "stderr")
                health_scope = trio.CancelScope()
                if self.port is not None:
                    nursery.start_soon(self._check_health, generation, health_scope)
                code = await handle.wait()
                handle.kill_group()  # whatever the leader left behind in its group
                health_scope.cancel()
                if self._handle is handle:
                    self._handle = None
                    self.sample, self.worker_stats, self.sessions = None, None, 0
                expected, why = exit_cause(self.machine, code, self.policy)
                exited = InstanceExited(
                    service=self.service,
                    replica=self.replica,
                    pid=handle.pid,
                    returncode=code,
                    expected=expected,
                    uptime=trio.current_time() - spawned_at,
                    at=time.time(),
                    # a stop agentvisor asked for is explained by its reason
                    reason=why if self.machine.state is ProcessState.STOPPING else "",
                )
                lost = await self._take_lost_turns(handle.pid, death_counts(self.machine, code))
                self._enqueue(generation, Exited(code, in_turn=bool(lost)))
                # The pipes close when the last holder goes; read what is left, bounded.
                nursery.cancel_scope.deadline = trio.current_time() + OUTPUT_DRAIN_TIMEOUT
        finally:
            if exited is not None:
                self._publish_exit(exited)
            handle.close()
            if self._handle is None:
                self._logs.close()

    async def _take_lost_turns(self, pid: int, counts: bool) -> list[LostTurn]:
        """The turns the dead worker had in flight, its death counted against them when
        ``counts``; a message it poisoned goes to the audit log."""
        if self._lost_turns is None:
            return []
        lost = await self._lost_turns(pid, counts)
        for turn in lost:
            if turn.poisoned and turn.message_id is not None:
                log.warning(
                    "%s:%d: message %r of session %s was in flight at %d worker deaths; "
                    "it is not run again",
                    self.service,
                    self.replica,
                    turn.message_id,
                    turn.session_id,
                    turn.deaths.counted,
                )
                self._bus.publish(
                    MessagePoisoned(
                        service=self.service,
                        replica=self.replica,
                        pid=pid,
                        session_id=turn.session_id,
                        message_id=turn.message_id,
                        deaths=turn.deaths.counted,
                        at=time.time(),
                    )
                )
        return lost

    def _publish_exit(self, exited: InstanceExited) -> None:
        """The exit event, once stderr is read to its end: the cause is in its last lines.

        A death of its own is explained by how it ended and the last stderr line.
        """
        tail = tuple(self.stderr_tail)
        self.exit_reason = exit_reason(exited.returncode, tail)
        reason = exited.reason or self.exit_reason
        self._bus.publish(attrs.evolve(exited, reason=reason, stderr_tail=tail))

    async def _pump(self, stream: trio.abc.ReceiveStream, name: str) -> None:
        def write(texts: Sequence[str]) -> None:
            if name == "stderr":
                self.stderr_tail.extend(texts)
            self._logs.write(self.replica, name, texts)

        await pump_lines(stream, write)

    async def _check_health(self, generation: int, scope: trio.CancelScope) -> None:
        delay = FIRST_CHECK_DELAY
        with scope:
            while True:
                starting = self.machine.state is ProcessState.STARTING
                if starting and not self.machine.healthy_seen:
                    await trio.sleep(min(delay, self.health.interval))
                    delay *= 2
                else:
                    await trio.sleep(self.health.interval)
                while not self.health.enabled:
                    await self._health_changed.wait()  # a reload may turn checks on again
                result = await self.check_now()
                self._enqueue(generation, HealthChecked(result.ok, result.message))

    async def check_now(self) -> CheckResult:
        """Run one health check of this instance now and remember its result."""
        assert self.port is not None
        if self.health.mode is HealthMode.HTTP:
            result = await check_http(
                self.host, self.port, self.health.http_path, timeout=self.health.timeout
            )
        else:
            result = await check_websocket(
                self.host,
                self.port,
                self.ws_path,
                timeout=self.health.timeout,
                protocol_ping=self.protocol_ping,
            )
        self.last_check, self.last_check_at = result, time.time()
        return result
