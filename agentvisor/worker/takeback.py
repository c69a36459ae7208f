"""Taking back a turn whose worker died: run it once more, or report it (the runtime's side
of issue 9's poison containment).

A session loaded from the store with an ``open_turn`` was in a turn when its
worker died. ``load_judged`` reads it once the supervisor has judged that
death (``SessionStore.judged``); ``take_back_turn`` decides, when the session
is restored, whether the turn runs again or ends with ``MESSAGE_POISONED`` /
``WORKER_LOST``; ``after_restore`` carries that out once the session has a
connection again (the error is an event of the session, replayable).
"""

from __future__ import annotations

import logging

from agentvisor.worker.protocol import ErrorCode, UserMessage, error_fields
from agentvisor.worker.session import Session
from agentvisor.worker.store import OpenTurn, SessionStore, StoredSession, StoreError

log = logging.getLogger("agentvisor.worker")


async def load_judged(store: SessionStore, session_id: str) -> tuple[StoredSession | None, bool]:
    """The stored session, and whether the death of the worker that ran its open turn (if
    any) has been judged; read again once it has. ``(None, True)`` if it cannot be read."""
    try:
        stored = await store.load(session_id)
        if stored is None or stored.open_turn is None:
            return stored, True
        if not await store.judged(session_id):
            return stored, False
        return await store.load(session_id), True
    except StoreError as error:
        log.error("cannot load session %s: %s", session_id, error)
        return None, True


def take_back_turn(session: Session, open_turn: OpenTurn, *, judged: bool) -> None:
    """A restored session whose worker died in a turn: the turn is resumed once.

    The stored history ends with that turn's user message (the rest of a turn
    is stored with its end, in one write). It is taken off and the turn runs
    again (``after_restore``) with the deaths counted against it (by the
    supervisor, or here when nobody ``judged`` the death: then it counts as the
    worker's own, alone); a poisoned message is not run again
    (``MESSAGE_POISONED``), nor one without a ``message_id`` (``WORKER_LOST``: a
    copy sent again could not be told apart from a new message).
    """
    deaths = open_turn.deaths if judged else open_turn.deaths.after(alone=True)
    last = session.history[-1] if session.history else None
    content = last.get("content") if last is not None and last.get("role") == "user" else None
    if isinstance(content, str):
        session.history.pop()
        session.saved_history = len(session.history)  # rewritten in place when it runs
    message_id = open_turn.message_id
    if deaths.poisoned or message_id is None or not isinstance(content, str):
        code = ErrorCode.MESSAGE_POISONED if deaths.poisoned else ErrorCode.WORKER_LOST
        if code is ErrorCode.MESSAGE_POISONED:
            log.warning(
                "message %r of session %s was in flight at %d worker deaths of their own;"
                " not run again",
                message_id,
                session.id,
                deaths.counted,
            )
        else:
            log.warning("session %s: its worker died during a turn", session.id)
        session.pending_error = (code, message_id)
        session.open_turn = None
        return
    session.interrupted = UserMessage(content, session.id, message_id)
    session.interrupted_deaths = deaths
    session.open_turn = OpenTurn(message_id, deaths)


def after_restore(session: Session, timestamp: str) -> UserMessage | None:
    """Once the session is attached again: report the turn its worker died in (an event of
    the session), or return its message to run again (None if there is none to run)."""
    if session.pending_error is not None:
        code, message_id = session.pending_error
        session.pending_error = None
        text = (
            "the message was in flight when its workers died of their own accord; not run again"
            if code is ErrorCode.MESSAGE_POISONED
            else "the worker died during this turn; send the message again to retry"
        )
        fields = error_fields(code, text, session_id=session.id, message_id=message_id)
        session.emit(fields, timestamp)
        return None
    request = session.interrupted
    if request is None or session.turn is not None:
        return None
    session.interrupted = None
    log.info("session %s: resuming message %r", session.id, request.message_id)
    return request
