"""Hypothesis strategies for the worker's protocol and transcripts.

(Kept beside their tests while the worker is built in parallel with the rest;
they belong in ``tests/strategies.py``.)
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from agentvisor.agent.types import FinalAnswer, PartialAnswer, Thinking, ToolCall, ToolOutput

EVENT_NAMES = [
    "user.create_session",
    "user.message",
    "user.cancel",
    "user.resume_session",
    "user.close_session",
    "ping",
]
FIELD_NAMES = ["event", "session_id", "content", "message_id", "metadata", "last_seq"]

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def protocol_objects(draw: st.DrawFn) -> dict[str, Any]:
    """Objects that look like requests: known and unknown fields, any types."""
    obj: dict[str, Any] = draw(
        st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=6), json_values, max_size=5)
    )
    if draw(st.booleans()):
        obj["event"] = draw(st.sampled_from(EVENT_NAMES) | st.text(max_size=12) | json_values)
    return obj


def frames() -> st.SearchStrategy[str]:
    """Text frames: arbitrary text, arbitrary JSON, request-like objects."""
    return st.one_of(
        st.text(),
        json_values.map(json.dumps),
        protocol_objects().map(json.dumps),
    )


_ids = st.sampled_from(["a", "b", "c", "d"])
agent_events = st.one_of(
    st.builds(Thinking, st.text(max_size=5)),
    st.builds(PartialAnswer, st.text(max_size=5)),
    st.builds(ToolCall, _ids, st.sampled_from(["t1", "t2"]), st.just({"x": 1})),
    st.builds(
        ToolOutput,
        _ids,
        st.sampled_from(["t1", "t2"]),
        st.booleans(),
        json_values,
        st.none() | st.text(max_size=5),
    ),
)
final_answers = st.none() | st.builds(FinalAnswer, st.text(max_size=5))
