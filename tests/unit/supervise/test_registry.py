"""One word for a service from its instances' states."""

from __future__ import annotations

import pytest

from agentvisor.supervise.registry import aggregate_state


@pytest.mark.parametrize(
    ("states", "desired", "expected"),
    [
        ([], 0, "stopped"),
        ([], 2, "stopped"),
        (["running"], 1, "running"),
        (["running", "running"], 2, "running"),
        (["running", "running"], 3, "degraded"),
        (["running", "stopped"], 2, "degraded"),
        (["running", "exited"], 2, "degraded"),
        (["running", "fatal"], 2, "fatal"),
        (["backoff", "fatal"], 2, "fatal"),
        (["running", "backoff"], 2, "backoff"),
        (["starting", "backoff"], 2, "backoff"),
        (["running", "starting"], 2, "starting"),
        (["stopping", "starting"], 2, "starting"),
        (["running", "stopping"], 2, "stopping"),
        (["exited"], 1, "exited"),
        (["exited", "stopped"], 2, "exited"),
        (["stopped", "stopped"], 2, "stopped"),
        (["running"], 0, "degraded"),
    ],
)
def test_aggregate_state(states: list[str], desired: int, expected: str) -> None:
    assert aggregate_state(states, desired) == expected
