"""What the relay learns from relayed messages: sessions, last seqs, turns in flight."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from agentvisor.router.sessions import MAX_KEPT_PER_SESSION, Learned, SessionTracker


def msg(**event: Any) -> bytes:
    return json.dumps(event).encode()


def test_created_and_resumed_sessions_are_learned_with_their_seq() -> None:
    tracker = SessionTracker()

    created = tracker.upstream_message(msg(event="agent.session_created", session_id="a", seq=1))
    tracker.upstream_message(msg(event="agent.thinking", session_id="a", seq=2))
    resumed = tracker.upstream_message(msg(event="agent.session_resumed", session_id="b", seq=9))

    assert created == Learned(session="a")
    assert resumed == Learned(session="b")
    assert tracker.sessions == {"a": 2, "b": 9}


def test_a_turn_is_in_flight_from_user_message_to_its_end() -> None:
    tracker = SessionTracker()
    tracker.upstream_message(msg(event="agent.session_created", session_id="a", seq=1))

    assert tracker.client_message(msg(event="user.message", session_id="a", content="hi"))
    assert tracker.turns_in_flight == 1
    ended = tracker.upstream_message(msg(event="agent.final_answer", session_id="a", seq=3))

    assert ended.turn_ended
    assert tracker.turns_in_flight == 0


def test_a_message_without_session_ends_with_the_new_sessions_answer() -> None:
    tracker = SessionTracker()
    tracker.client_message(msg(event="user.message", content="hi"))
    tracker.upstream_message(msg(event="agent.session_created", session_id="n", seq=1))

    assert tracker.turns_in_flight == 1
    assert tracker.upstream_message(msg(event="agent.cancelled", session_id="n", seq=2)).turn_ended
    assert tracker.turns_in_flight == 0


def test_a_closed_session_is_forgotten_and_ends_its_turns() -> None:
    tracker = SessionTracker()
    tracker.upstream_message(msg(event="agent.session_created", session_id="a", seq=1))
    tracker.client_message(msg(event="user.message", session_id="a", content="x"))

    learned = tracker.upstream_message(msg(event="agent.session_closed", session_id="a", seq=2))

    assert learned == Learned(closed="a", turn_ended=True)
    assert tracker.sessions == {}
    assert tracker.turns_in_flight == 0


def test_resume_answers_are_matched_and_a_failed_resume_is_not_a_turn_end() -> None:
    tracker = SessionTracker()
    for session in ("a", "b"):
        tracker.upstream_message(msg(event="agent.session_created", session_id=session, seq=4))
    tracker.client_message(msg(event="user.message", session_id="b", content="x"))

    asked = tracker.begin_resume()
    tracker.upstream_message(msg(event="agent.session_resumed", session_id="a", seq=5))
    tracker.upstream_message(
        msg(event="agent.error", session_id="b", code="SESSION_NOT_FOUND", recoverable=False)
    )

    assert asked == {"a": 4, "b": 4}
    assert tracker.resume_pending == set()
    assert tracker.resume_failed == {"b"}
    assert tracker.turns_in_flight == 1


@given(st.binary(max_size=200))
def test_garbage_is_ignored(payload: bytes) -> None:
    tracker = SessionTracker()
    tracker.client_message(payload)
    tracker.upstream_message(payload)
    assert tracker.turns_in_flight >= 0


def test_turn_counts_never_go_negative() -> None:
    tracker = SessionTracker()
    ended = tracker.upstream_message(msg(event="agent.error", code="INVALID_MESSAGE"))

    assert not ended.turn_ended
    assert tracker.turns_in_flight == 0


def test_messages_in_flight_sent_to_a_worker_are_the_ones_to_send_again() -> None:
    tracker = SessionTracker()
    tracker.upstream_message(msg(event="agent.session_created", session_id="a", seq=1))
    tracker.client_message(msg(event="user.message", session_id="a", content="done"))
    tracker.client_message(msg(event="user.message", session_id="a", content="lost"))
    tracker.mark_sent(tracker.recorded)
    tracker.upstream_message(msg(event="agent.final_answer", session_id="a", seq=2))
    tracker.client_message(msg(event="user.message", session_id="a", content="buffered"))

    again = tracker.to_resend()  # "buffered" is still in the connection's buffer

    assert [json.loads(tracker.resend(k) or b"")["content"] for k in again] == ["lost"]
    assert tracker.turns_in_flight == 2


def test_a_turn_interrupted_by_the_loss_is_sent_again_and_counted_again() -> None:
    tracker = SessionTracker()
    tracker.upstream_message(msg(event="agent.session_created", session_id="a", seq=1))
    tracker.client_message(msg(event="user.message", session_id="a", content="x", message_id="m"))
    tracker.mark_sent(tracker.recorded)
    again = tracker.to_resend()
    ended = tracker.upstream_message(
        msg(event="agent.cancelled", session_id="a", seq=3, message_id="m", reason="worker_lost")
    )

    assert ended.turn_ended
    assert tracker.turns_in_flight == 0
    assert [tracker.resend(k) for k in again] == [again[0].payload]
    assert tracker.turns_in_flight == 1
    tracker.upstream_message(msg(event="agent.final_answer", session_id="a", seq=5, message_id="m"))
    assert tracker.kept == []
    assert tracker.kept_bytes == 0


def test_a_turn_answered_by_the_replay_is_not_sent_again() -> None:
    tracker = SessionTracker()
    tracker.upstream_message(msg(event="agent.session_created", session_id="a", seq=1))
    tracker.client_message(msg(event="user.message", session_id="a", content="x"))
    tracker.mark_sent(tracker.recorded)
    again = tracker.to_resend()
    tracker.upstream_message(msg(event="agent.final_answer", session_id="a", seq=4))

    assert [tracker.resend(k) for k in again] == [None]


def test_a_message_without_session_is_sent_again_with_the_session_created_for_it() -> None:
    tracker = SessionTracker()
    tracker.client_message(msg(event="user.message", content="hi"))
    tracker.mark_sent(tracker.recorded)
    assert [json.loads(k.payload or b"") for k in tracker.to_resend()] == [
        {"event": "user.message", "content": "hi"}
    ]

    tracker.upstream_message(msg(event="agent.session_created", session_id="n", seq=1))

    (kept,) = tracker.to_resend()
    assert json.loads(tracker.resend(kept) or b"") == {
        "event": "user.message",
        "content": "hi",
        "session_id": "n",
    }


def test_kept_messages_are_bounded_per_session() -> None:
    tracker = SessionTracker()
    for n in range(MAX_KEPT_PER_SESSION + 2):
        tracker.client_message(msg(event="user.message", session_id="a", content=str(n)))
    tracker.mark_sent(tracker.recorded)

    again = tracker.to_resend()

    assert [json.loads(k.payload or b"")["content"] for k in again] == [
        str(n) for n in range(MAX_KEPT_PER_SESSION)
    ]
    for _ in range(MAX_KEPT_PER_SESSION + 2):
        tracker.upstream_message(msg(event="agent.final_answer", session_id="a"))
    assert tracker.kept == []
    assert tracker.kept_bytes == 0


def test_the_answer_to_a_cancel_with_nothing_running_ends_no_turn() -> None:
    tracker = SessionTracker()
    tracker.client_message(msg(event="user.message", content="new session"))  # anonymous
    learned = tracker.upstream_message(
        msg(event="agent.error", session_id="other", code="NO_TURN_RUNNING", recoverable=True)
    )
    assert learned == Learned()
    assert tracker.turns_in_flight == 1
    assert len(tracker.kept) == 1  # still kept, to send again after a failover


def test_issue_9_frames_the_worker_rejects_are_no_turns() -> None:
    """The router reads a ``user.message`` with the worker's own parser."""
    tracker = SessionTracker()
    rejected = [
        b'{"event":"user.message","session_id":"a","content":NaN}',
        b'{"event":"user.message","session_id":"a","content":"x","n":Infinity}',
        b'{"event":"user.message","session_id":"a","content":7}',
        b'{"event":"user.message","session_id":"a"}',
        b'{"event":"user.message","session_id":"a","content":"x","message_id":[1]}',
        b'{"event":"user.message","session_id":"a","content":"\xff"}',
    ]
    for payload in rejected:
        assert tracker.client_message(payload, can_rewrite=True) is None, payload
    assert tracker.turns_in_flight == 0
    assert tracker.kept == []


def test_issue_9_a_message_without_an_id_gets_one_and_is_kept_with_it() -> None:
    tracker = SessionTracker(id_prefix="rX")
    plain = msg(event="user.message", session_id="a", content="hi")
    sent = tracker.client_message(plain, can_rewrite=True)
    assert sent is not None
    assert json.loads(sent) == json.loads(plain) | {"message_id": "rX-1"}
    assert tracker.kept[0].payload == sent
    assert tracker.kept[0].message_id == "rX-1"
    own = msg(event="user.message", session_id="a", content="hi", message_id=5)
    assert tracker.client_message(own, can_rewrite=True) is own  # the client's own id is kept
    unframed = msg(event="user.message", session_id="a", content="in pieces")
    assert tracker.client_message(unframed) is unframed  # cannot be rewritten: sent as it is
    assert tracker.turns_in_flight == 3
