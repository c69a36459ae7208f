"""The connection core driven as bytes, without sockets: relay, failover and drain.

The core is sans-I/O, so the whole relay runs here on bytes: a client that
writes ``user.message`` frames and reads what the router hands out with an
independent frame parser, model workers sharing one session store (as
agentvisor's replicas do: de-duplication by ``message_id``, a replay of the
events after ``last_seq`` on resume, a turn interrupted by a death run
again, and reported as ``MESSAGE_POISONED`` after two), and a driver that
does what the trio shells do (``relay.py``, ``failover.py``, the engine).
Every byte stream is cut at arbitrary points; writes to the client may get
through only in part.

Invariants, whatever the interleaving of sends, reads, answers (small or
streamed through in pieces), worker deaths, drains and keepalive ticks:

- the client's stream is a valid frame sequence, and nothing follows a close;
- every user message is answered, or errored, exactly once, and stored once;
  one sent while ``MAX_KEPT_PER_SESSION`` are in flight is refused at once
  (``TOO_MANY_IN_FLIGHT``), never relayed unkept;
- a kill storm whose replacements answer the resumes is failed over however
  many kills come in a row (the failover bound restarts at answered resumes);
- a frame of the router's own (a ping, a notice, its close) is never kept
  waiting when what the client got so far ends at a frame boundary, even
  while the start of the next frame is held back (issue 14.1).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings

from agentvisor.router.connection import ConnectionCore, UpstreamState
from agentvisor.router.frames import (
    CONTROL,
    MESSAGE,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameScanner,
    close_payload,
    encode_frame,
    parse_close,
)
from agentvisor.router.policy import TOO_MANY_REASON, Close, Failover, Notify, Ping, Policy
from agentvisor.router.sessions import MAX_KEPT_PER_SESSION
from agentvisor.router.streams import KEEPALIVE_PAYLOAD
from tests.strategies import RelayStep, relay_runs

MASK = b"\x11\x22\x33\x44"
#: An answer larger than the scanner holds back: it is streamed through in pieces.
LARGE = 70_000
PING_FRAME = encode_frame(OP_PING, KEEPALIVE_PAYLOAD)
PONG_FRAME = encode_frame(OP_PONG, KEEPALIVE_PAYLOAD, mask=MASK)


def server_frame(event: dict[str, Any]) -> bytes:
    return encode_frame(OP_TEXT, json.dumps(event).encode())


def notice(event: str, **data: Any) -> bytes:
    return server_frame({"event": event, "data": data})


class Store:
    """The session store the replicas share: history, events with their seq, deaths."""

    def __init__(self) -> None:
        self.history: list[str] = []  # message ids stored, in order
        self.events: list[tuple[int, dict[str, Any]]] = []
        self.seq = 0
        self.done: set[str] = set()  # turns answered or errored
        self.deaths: Counter[str] = Counter()

    def emit(self, event: dict[str, Any]) -> bytes:
        self.seq += 1
        event = {**event, "session_id": "s", "seq": self.seq}
        self.events.append((self.seq, event))
        return server_frame(event)


class Worker:
    """One replica's connection: what reached it, what it runs, what it has to send."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.scanner = FrameScanner(masked=True, whole_messages=True)
        self.inbox = b""  # written to it, not read yet (lost if it dies)
        self.outbox = b""
        self.running: list[str] = []
        self.restored = False

    def read(self) -> None:
        _buf, records = self.scanner.feed(self.inbox)
        self.inbox = b""
        for record in records:
            if record[0] == MESSAGE:
                self.receive(json.loads(record[2]))

    def receive(self, event: dict[str, Any]) -> None:
        store = self.store
        if event["event"] == "user.message":
            message_id = event["message_id"]
            assert event["session_id"] == "s"
            self.restore()  # the session is loaded from the store on its first message
            if message_id not in store.history:  # a copy of a stored message is not run
                store.history.append(message_id)
                self.running.append(message_id)
        elif event["event"] == "user.resume_session":
            last_seq = event.get("last_seq", 0)
            for seq, past in store.events:
                if seq > last_seq:
                    self.outbox += server_frame(past)
            self.restore()
            self.outbox += server_frame({"event": "agent.session_resumed", "session_id": "s"})

    def restore(self) -> None:
        """Loading the session: a turn its last worker died in runs again (once)."""
        if self.restored:
            return
        self.restored = True
        store = self.store
        for message_id in store.history:
            if message_id in store.done or message_id in self.running:
                continue
            if store.deaths[message_id] >= 2:
                store.done.add(message_id)
                self.outbox += store.emit(
                    {"event": "agent.error", "code": "MESSAGE_POISONED", "message_id": message_id}
                )
            else:
                self.running.append(message_id)

    def answer(self, *, large: bool) -> None:
        if not self.running:
            return
        message_id = self.running.pop(0)
        self.store.done.add(message_id)
        text = "x" * (LARGE if large else 10)
        event = {"event": "agent.final_answer", "message_id": message_id, "answer": text}
        self.outbox += self.store.emit(event)

    def die(self) -> None:
        for message_id in self.running:
            self.store.deaths[message_id] += 1


class Client:
    """An independent reader of what the router hands out."""

    def __init__(self) -> None:
        self.scanner = FrameScanner(masked=False, whole_messages=True)
        self.answered: Counter[str] = Counter()  # final answers and errors, by message id
        self.closed = False
        self.close_code: int | None = None
        self.after_close = 0
        self.pings = 0
        self.lost: list[str] = []  # the reasons of error UPSTREAM_LOST notices
        self.refused = 0  # agent.error TOO_MANY_IN_FLIGHT (the router names no message id)
        self.out = b""  # frames written, not yet fed to the router

    def receive(self, data: bytes) -> None:
        _buf, records = self.scanner.feed(data)  # raises if the stream is broken
        for record in records:
            if self.closed:
                self.after_close += 1
            elif record[0] == MESSAGE:
                event = json.loads(record[2])
                if event.get("code") == "TOO_MANY_IN_FLIGHT":
                    assert event["recoverable"] is True
                    assert "message_id" not in event
                    assert str(MAX_KEPT_PER_SESSION) in event["message"]
                    self.refused += 1
                elif event["event"] in ("agent.final_answer", "agent.error"):
                    self.answered[event["message_id"]] += 1
                elif event["event"] == "error":
                    self.lost.append(event["data"]["message"])
            elif record[0] == CONTROL and record[1] == OP_CLOSE:
                self.closed = True
                self.close_code = parse_close(record[2])[0]
            elif record[0] == CONTROL and record[1] == OP_PING:
                self.pings += 1
                self.out += PONG_FRAME

    @property
    def at_frame_boundary(self) -> bool:
        return self.scanner.at_boundary


class Relay:
    """What the shells do, on bytes: the pumps, the engine, failover, drain, the end."""

    def __init__(self, policy: Policy | None = None) -> None:
        policy = policy or Policy(agent_protocol=True, notices=True, failover=True)
        self.core = ConnectionCore(
            policy,
            now=0.0,
            error_notice=lambda code, message, _recoverable: notice(
                "error", code=code, message=message
            ),
            encode=lambda opcode, payload: encode_frame(opcode, payload, mask=MASK),
        )
        self.now = 0.0
        self.store = Store()
        self.worker = Worker(self.store)
        self.worker.outbox = self.store.emit({"event": "agent.session_created"})
        self.client = Client()
        self.core.upstream_connected()
        self.core.attached(0.0)
        self.ended = False
        # The client names the session once it has seen it created (on this connection).
        self.worker_write(1000, 1.0)
        self.client_read(1.0)
        self.messages = 0  # user messages the client wrote

    # -- client → worker

    def feed_client(self, size: int) -> None:
        data, self.client.out = self.client.out[:size], self.client.out[size:]
        if not data or self.core.client_done:
            return
        if self.core.plain:  # the engine's thread
            out = self.core.client_fast(data, self.now)
            if out is None:
                out = self.core.client_data(b"", self.now)
        else:
            out = self.core.client_data(data, self.now)
        self.perform(self.core.refusals())
        if out:
            self.to_worker(out)

    def to_worker(self, out: bytes) -> None:
        if self.core.is_attached:
            self.worker.inbox += out
            self.core.client_written()
        else:
            self.core.hold(out, force=True)

    # -- worker → client

    def worker_write(self, size: int, part: float) -> None:
        data, self.worker.outbox = self.worker.outbox[:size], self.worker.outbox[size:]
        if not data:
            return
        if self.core.plain:  # the engine's thread: written at once
            out = self.core.upstream_fast(data)
            if out:
                self.write_client(out, part)
                return
            if out is not None:
                return
        self.core.upstream_data(b"" if self.core.outbound.has_backlog else data)
        if self.core.upstream is UpstreamState.LOST and not self.ended:
            self.worker.die()
            self.lose()

    def write_client(self, data: bytes, part: float) -> None:
        written = len(data) if part >= 1.0 else int(len(data) * part)
        self.client.receive(data[:written])
        if written < len(data):
            self.core.give_back_output(data[written:])

    def client_read(self, part: float) -> None:
        while data := self.core.take_output():
            self.write_client(data, part)
            if part < 1.0:
                return
        # Everything handed out was written: an own frame waits only inside a frame.
        if not self.core.output.empty:
            assert not self.client.at_frame_boundary, "a router frame waits at a boundary"

    # -- faults and their handling

    def kill(self) -> None:
        self.worker.die()
        self.core.upstream_eof()
        self.lose()

    def lose(self) -> None:
        actions = self.core.upstream_lost(self.now)
        if any(isinstance(action, Failover) for action in actions):
            self.switch(drained=False)
        else:
            self.perform(actions)

    def switch(self, *, drained: bool) -> None:
        core = self.core
        core.switch_begun()
        core.detached()
        if not core.movable():
            self.perform(core.cut_mid_message())
            return
        in_flight = core.tracker.to_resend()
        worker = self.worker = Worker(self.store)
        core.upstream_connected()
        for frame in core.resume_frames(lambda: MASK):
            worker.inbox += frame
        worker.read()
        while core.tracker.resume_pending and worker.outbox:
            chunk, worker.outbox = worker.outbox[:97], worker.outbox[97:]
            core.upstream_data(chunk)
        preserved = core.resume_outcome()
        for frame in core.resend_frames(in_flight):
            worker.inbox += frame
        taken = core.take_pending()
        if taken is not None:
            worker.inbox += taken[0]
            core.pending_written(taken[0], taken[1], ok=True)

        def build(preserved: bool) -> bytes:
            return notice("service_switched", session_preserved=preserved)

        self.perform(core.switched(resumed_all=preserved, drained=drained, build=build))
        core.attached(self.now)

    def perform(self, actions: list[Any]) -> None:
        for action in actions:
            if isinstance(action, Notify):
                self.core.send_own(action.frame)
            elif isinstance(action, Ping):
                self.core.send_own(PING_FRAME)
            elif isinstance(action, Close):
                self.end()

    def end(self) -> None:
        """What ``closing.finish`` does with the client: the final close frame."""
        self.ended = True
        final = self.core.final_close(shutdown=False)
        if final is not None:
            code, reason, _lost = final
            self.core.send_own(encode_frame(OP_CLOSE, close_payload(code, reason)), close=True)

    # -- one step

    def step(self, step: RelayStep) -> None:
        self.now += step.pause
        core = self.core
        if self.ended:  # only bytes still arriving, and the client reading
            if step.step == "worker_write":
                self.worker_write(step.size, step.part)
            elif step.step == "client_read":
                self.client_read(step.part)
            return
        if step.step == "send":
            # (a fifth turn in flight is refused: sessions.py's bound)
            self.messages += 1
            event = {"event": "user.message", "session_id": "s", "content": "hi"}
            self.client.out += encode_frame(OP_TEXT, json.dumps(event).encode(), mask=MASK)
            self.feed_client(step.size)
        elif step.step == "worker_read":
            self.worker.read()
        elif step.step in ("answer", "answer_large"):
            self.worker.answer(large=step.step == "answer_large")
        elif step.step == "worker_write":
            self.worker_write(step.size, step.part)
        elif step.step == "client_read":
            self.client_read(step.part)
            self.feed_client(step.size)  # the pongs
        elif step.step == "kill":
            self.kill()
        elif step.step == "drain":
            core.drain("instance_draining")
        elif step.step == "tick":
            self.perform(core.tick(self.now))
        if not self.ended and core.switch_due(self.now, idle=True):
            self.switch(drained=True)

    def heal(self) -> None:
        """No more faults: everything sent is read, run, answered and delivered."""
        for _ in range(50):
            while self.client.out and not self.ended:
                self.feed_client(1000)
            self.worker.read()
            while self.worker.running:
                self.worker.answer(large=False)
            while self.worker.outbox and not self.ended:
                self.worker_write(1000, 1.0)
            self.client_read(1.0)
            if not (self.client.out or self.worker.inbox or self.worker.outbox):
                return


@settings(max_examples=400, deadline=None)
@given(relay_runs())
def test_relay_failover_and_drain_over_arbitrary_interleavings(run: list[RelayStep]) -> None:
    relay = Relay()
    for step in run:
        relay.step(step)
        assert relay.client.after_close == 0  # no frame delivered after a close
    relay.heal()
    client, store, core = relay.client, relay.store, relay.core
    assert client.after_close == 0
    assert len(store.history) == len(set(store.history))  # each message stored once
    assert set(client.answered.values()) <= {1}  # never answered twice
    # The replacements answer every resume: the failover bound never ends the connection.
    assert TOO_MANY_REASON not in client.lost
    if not relay.ended:
        sent = [f"r-{n}" for n in range(1, core.tracker.assigned + 1)]
        assert sorted(client.answered) == sorted(sent)  # every message answered or errored
        assert core.tracker.assigned + client.refused == relay.messages  # each exactly once
        assert core.tracker.turns_in_flight == 0
        assert not client.closed
    elif core.output.own_closed and core.output.empty:
        assert client.closed  # our close reached the client


def test_a_ping_is_not_held_behind_the_start_of_the_next_frame() -> None:
    """Issue 14.1: a slow reader of a continuous stream always has part of a frame held."""
    relay = Relay()
    relay.worker_write(1000, 1.0)  # session_created
    relay.client_read(1.0)
    frame = server_frame({"event": "token", "text": "y" * 1000})
    relay.worker.outbox = frame * 3
    relay.worker_write(len(frame) * 2 + 10, 1.0)  # two frames and the start of a third
    relay.core.send_own(PING_FRAME)
    relay.client_read(0.5)  # a slow reader: half of what is handed out gets through
    relay.client_read(1.0)
    assert relay.client.pings == 1
    relay.worker_write(len(frame), 1.0)
    relay.client_read(1.0)
    assert relay.client.at_frame_boundary
    assert relay.client.after_close == 0


def test_a_ping_waits_inside_a_frame_streamed_through() -> None:
    relay = Relay()
    relay.worker_write(1000, 1.0)
    relay.client_read(1.0)
    large = server_frame({"event": "token", "text": "z" * LARGE})
    relay.worker.outbox = large
    relay.worker_write(LARGE // 2, 1.0)  # half of a frame larger than the scanner holds
    relay.client_read(1.0)
    relay.core.send_own(PING_FRAME)
    relay.client_read(1.0)
    assert relay.client.pings == 0  # it may not cut the frame
    relay.worker_write(LARGE, 1.0)
    relay.client_read(1.0)
    assert relay.client.pings == 1


def test_nothing_follows_the_routers_close() -> None:
    relay = Relay()
    relay.worker_write(1000, 1.0)
    relay.end()
    relay.worker.outbox = server_frame({"event": "token", "text": "late"})
    relay.worker_write(1000, 1.0)
    relay.client_read(1.0)
    assert relay.client.closed
    assert relay.client.after_close == 0
    assert relay.core.send_own(PING_FRAME) is None


@pytest.mark.parametrize("code", [1000, 1001, 1011, 4000])
def test_a_plain_backends_close_code_reaches_the_client_as_it_was(code: int) -> None:
    relay = Relay(Policy(agent_protocol=False, notices=False, failover=False))
    relay.worker.outbox = server_frame({"event": "last"}) + encode_frame(
        OP_CLOSE, close_payload(code, "bye")
    )
    relay.worker_write(7, 1.0)
    relay.core.send_own(PING_FRAME)  # queued before the close: goes out before it
    relay.worker_write(1000, 1.0)
    relay.client_read(1.0)
    assert relay.core.upstream is UpstreamState.CLOSED
    assert relay.client.close_code == code
    assert relay.client.pings == 1
    assert relay.client.after_close == 0
    assert relay.core.send_own(PING_FRAME) is None  # nothing after the worker's close


def test_an_agent_workers_going_away_is_failed_over_not_passed_on() -> None:
    relay = Relay()
    relay.worker.outbox = encode_frame(OP_CLOSE, close_payload(1001, "SIGTERM"))
    relay.worker_write(1000, 1.0)
    relay.client_read(1.0)
    assert not relay.client.closed
    assert relay.core.switches == 1  # moved to another worker, the client kept


def test_a_message_over_the_kept_bound_is_refused_at_once_and_the_rest_survive_a_kill() -> None:
    relay = Relay()
    for _ in range(MAX_KEPT_PER_SESSION + 2):
        relay.step(RelayStep("send", 0.0, 10_000, 1.0))
    relay.client_read(1.0)
    assert relay.client.refused == 2  # answered by the router, before any worker answer
    relay.worker.read()
    assert len(relay.store.history) == MAX_KEPT_PER_SESSION  # the refused never reached it
    relay.kill()  # every kept message is sent again to the replacement, stored once
    relay.heal()
    assert sorted(relay.client.answered) == [f"r-{n}" for n in range(1, 5)]
    assert set(relay.client.answered.values()) == {1}
    assert len(relay.store.history) == len(set(relay.store.history)) == MAX_KEPT_PER_SESSION


def test_a_kill_storm_of_workers_that_answer_their_resumes_is_failed_over_every_time() -> None:
    relay = Relay()
    relay.step(RelayStep("send", 0.0, 10_000, 1.0))
    kills = 3 * relay.core.policy.max_failovers
    for _ in range(kills):  # all within the failover window
        relay.kill()
    assert not relay.ended
    relay.heal()
    assert relay.client.answered == Counter({"r-1": 1})
    assert relay.core.switches == kills
