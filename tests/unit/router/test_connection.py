"""The relay's sans-I/O connection core (``router/connection.py``), without sockets.

Unit tests of each decision, and a property test that drives the core and its
session tracker through arbitrary interleavings of client messages, worker
answers, worker deaths and timers against a model worker that behaves like
agentvisor's (one session store shared by the replicas, de-duplication by
``message_id``, a resumed session runs its interrupted turn again).
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings

from agentvisor.router.connection import ConnectionCore
from agentvisor.router.frames import FrameScanner
from agentvisor.router.policy import (
    AGENT_FRAME_CEILING,
    Close,
    Failover,
    Notify,
    Ping,
    Policy,
    client_message_limit,
)
from agentvisor.router.sessions import MAX_KEPT_PER_SESSION
from tests.strategies import connection_runs

MASK = b"\x01\x02\x03\x04"


def error_notice(code: str, message: str, recoverable: bool) -> bytes:
    return json.dumps({"event": "error", "data": {"code": code}}).encode()


def core(**policy: Any) -> ConnectionCore:
    options: dict[str, Any] = {"agent_protocol": True, "notices": True, "failover": True}
    options.update(policy)
    return ConnectionCore(
        Policy(**options), now=0.0, error_notice=error_notice, encode=lambda _op, data: data
    )


# -- what a route's agents understand --------------------------------------------------


def test_command_agents_get_no_notices_nor_failover_unless_they_opt_in() -> None:
    plain = Policy.build(
        agent_protocol=False, router_notices=False, management_events=True, failover=True
    )
    opted = Policy.build(
        agent_protocol=False, router_notices=True, management_events=True, failover=True
    )
    agent = Policy.build(
        agent_protocol=True, router_notices=False, management_events=True, failover=True
    )
    assert (plain.notices, plain.failover) == (False, False)
    assert (opted.notices, opted.failover) == (True, True)
    assert (agent.notices, agent.failover) == (True, True)
    quiet = Policy.build(
        agent_protocol=True, router_notices=False, management_events=False, failover=False
    )
    assert (quiet.notices, quiet.failover) == (False, False)


def test_a_plain_backends_deliberate_close_is_passed_on() -> None:
    plain = core(agent_protocol=False, notices=False, failover=False)
    assert not plain.fails_over(1001, client_closing=False)
    assert not plain.fails_over(1011, client_closing=False)
    agent = core()
    assert agent.fails_over(1001, client_closing=False)  # SIGTERM drain: rolling restart
    assert not agent.fails_over(1000, client_closing=False)
    assert not agent.fails_over(1001, client_closing=True)  # the answer to the client's close


def test_a_lost_plain_backend_closes_the_client_with_1011_and_no_notice() -> None:
    plain = core(agent_protocol=False, notices=False, failover=False)
    assert plain.upstream_lost(1.0) == [Close(1011, "the connection to the agent was lost")]
    assert plain.upstream_lost(2.0) == []  # closed once


def test_failover_is_bounded_for_workers_that_serve_nothing() -> None:
    connection = core()
    actions = [connection.upstream_lost(0.1 * n) for n in range(10)]
    failovers = [a for a in actions if a and isinstance(a[0], Failover)]
    assert len(failovers) == connection.policy.max_failovers
    last = next(a for a in actions if a and not isinstance(a[0], Failover))
    assert isinstance(last[0], Notify)
    assert last[-1] == Close(1011, "the agent keeps closing the connection")


def test_workers_that_serve_between_deaths_are_failed_over_every_time() -> None:
    connection = core()
    for n in range(20):
        connection.attached(float(n))
        connection.turn_ended()
        assert connection.upstream_lost(n + 0.5) == [Failover("upstream_lost")]


def test_workers_that_answer_every_resume_are_failed_over_every_time() -> None:
    """A kill storm from outside: each new worker answers the resume and is killed before
    the long turn ends. It serves, so the bound (for workers that serve nothing) stays off;
    a worker that does not answer the resume counts toward it."""
    connection = core()
    connection.tracker.upstream_message(
        b'{"event":"agent.session_created","session_id":"s","seq":0}'
    )
    for n in range(20):
        assert connection.upstream_lost(n + 0.5) == [Failover("upstream_lost")]
        connection.resume_frames(lambda: MASK)
        connection.switched(resumed_all=True, drained=False, build=lambda _: b"")
        connection.attached(n + 0.6)
    for n in range(connection.policy.max_failovers):
        assert connection.upstream_lost(30.0 + 0.1 * n) == [Failover("upstream_lost")]
        connection.resume_frames(lambda: MASK)
        connection.switched(resumed_all=False, drained=False, build=lambda _: b"")
        connection.attached(30.05 + 0.1 * n)
    assert connection.upstream_lost(30.6)[-1] == Close(
        1011, "the agent keeps closing the connection"
    )


def test_session_preserved_is_claimed_only_when_it_can_be() -> None:
    def build(preserved: bool) -> bytes:
        return b"preserved" if preserved else b"lost"

    plain = core(agent_protocol=False)
    assert plain.switched(resumed_all=True, drained=False, build=build) == [Notify(b"lost")]
    assert plain.switched(resumed_all=True, drained=True, build=build) == [Notify(b"preserved")]
    agent = core()
    assert agent.switched(resumed_all=True, drained=False, build=build) == [Notify(b"preserved")]
    assert agent.switched(resumed_all=False, drained=False, build=build) == [Notify(b"lost")]


def test_keepalive_pings_an_idle_client_and_closes_a_silent_one() -> None:
    connection = core(ping_interval=10.0, ping_timeout=5.0)
    assert connection.tick(9.0) == []
    assert connection.tick(10.0) == [Ping()]
    assert connection.next_tick() == 15.0
    assert connection.tick(16.0, blocked=True) == []  # waits on the worker: no proof
    connection.client_activity(17.0)
    assert connection.tick(20.0) == []
    assert connection.tick(27.0) == [Ping()]
    assert connection.tick(32.0) == [Close(1011, "keepalive ping timeout")]
    assert connection.tick(99.0) == []


def test_a_vanished_client_is_reported_to_the_worker_as_going_away() -> None:
    connection = core()
    assert connection.worker_close_code(shutdown=True) == 1001
    assert connection.worker_close_code(shutdown=False) == 1000
    connection.client_lost()
    assert connection.worker_close_code(shutdown=False) == 1001


def test_agent_routes_leave_message_too_large_to_the_worker() -> None:
    assert client_message_limit(1000, agent_protocol=False) == 1000
    assert client_message_limit(1000, agent_protocol=True) == AGENT_FRAME_CEILING
    assert client_message_limit(10**8, agent_protocol=True) == 4 * 10**8


def test_the_forwarded_boundary_ignores_the_held_start_of_the_next_frame() -> None:
    scanner = FrameScanner(masked=False)
    _buf, records = scanner.feed(b"\x81\x02hi\x81")  # a frame and one byte of the next
    assert records
    assert not scanner.at_boundary
    assert scanner.sent_to_boundary
    assert scanner.sent_to_message_boundary


# -- arbitrary interleavings against a model worker -------------------------------------


class Model:
    """Replicas sharing one session store, as agentvisor's workers do."""

    def __init__(self) -> None:
        self.history: list[str] = []  # message ids stored in session "s", in order
        self.running: list[str] = []  # of the live worker, oldest first
        self.answered: dict[str, int] = {}  # message id -> final answers the client got
        self.sent: list[str] = []  # ids the client's messages were given

    def receive(self, payload: bytes) -> None:
        event = json.loads(payload)
        message_id = event["message_id"]
        if message_id in self.history:
            return  # a copy of a stored message: its turn answers it
        self.history.append(message_id)
        self.running.append(message_id)

    def resume(self) -> None:
        """A new worker resumes "s": it runs the turns left unanswered again."""
        self.running = [m for m in self.history if m not in self.answered]


def final_answer(message_id: str) -> bytes:
    event = {"event": "agent.final_answer", "session_id": "s", "message_id": message_id}
    return json.dumps(event).encode()


@settings(max_examples=300, deadline=None)
@given(connection_runs())
def test_every_message_is_answered_once_and_stored_once(run: list[tuple[str, float]]) -> None:
    connection = core()
    tracker = connection.tracker
    model = Model()
    tracker.upstream_message(b'{"event":"agent.session_created","session_id":"s","seq":0}')
    delivered_after_close = 0
    unread: list[bytes] = []
    now = 0.0

    def lose_worker() -> None:
        nonlocal now
        in_flight = tracker.to_resend()
        actions = connection.upstream_lost(now)
        if not actions or not isinstance(actions[0], Failover):
            return
        connection.resume_frames(lambda: MASK)
        model.resume()
        tracker.upstream_message(b'{"event":"agent.session_resumed","session_id":"s","seq":0}')
        for payload in connection.resend_frames(in_flight):
            model.receive(payload)
        connection.attached(now)

    for step, pause in run:
        now += pause
        if connection.closed:
            delivered_after_close += len(connection.tick(now))
            continue
        if step == "send" and tracker.turns_in_flight >= MAX_KEPT_PER_SESSION:
            continue  # the kept bound (sessions.py): a fifth message in flight is not kept
        if step == "send":
            number = len(model.sent) + 1
            payload = json.dumps(
                {"event": "user.message", "session_id": "s", "content": f"m{number}"}
            ).encode()
            sent = tracker.client_message(payload, can_rewrite=True)
            assert isinstance(sent, bytes)  # under the bound: relayed
            model.sent.append(json.loads(sent)["message_id"])
            tracker.mark_sent(tracker.recorded)
            unread.append(sent)
            model.receive(unread.pop())
        elif step == "answer" and model.running:
            message_id = model.running.pop(0)
            model.answered[message_id] = model.answered.get(message_id, 0) + 1
            learned = tracker.upstream_message(final_answer(message_id))
            if learned.turn_ended:
                connection.turn_ended()
        elif step in ("kill", "kill_unread"):
            if step == "kill_unread" and model.history and model.history[-1] in model.running:
                # the last message was written but the worker died before reading it
                lost = model.history.pop()
                model.running.remove(lost)
            lose_worker()
        elif step == "tick":
            for action in connection.tick(now):
                assert isinstance(action, Ping | Close)

    # Afterwards the worker finishes everything it has (no more faults).
    if not connection.closed:
        while model.running:
            message_id = model.running.pop(0)
            model.answered[message_id] = model.answered.get(message_id, 0) + 1
            tracker.upstream_message(final_answer(message_id))
        assert sorted(model.answered) == sorted(model.sent)  # every message answered...
        assert set(model.answered.values()) <= {1}  # ...exactly once
        assert tracker.turns_in_flight == 0
    assert len(model.history) == len(set(model.history))  # each message stored once
    assert delivered_after_close == 0  # nothing sent after the close
    assert connection.futile <= connection.policy.max_failovers  # failover bounded
