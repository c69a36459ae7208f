"""Which config writes landed, from their intents and the file's digest (pure)."""

from __future__ import annotations

from typing import Any

from hypothesis import given

from agentvisor.store.intents import Intent, landed
from tests.strategies import config_write_histories


@given(config_write_histories())
def test_exactly_the_edits_that_reached_the_file_are_recovered(
    history: tuple[list[Any], int, int],
) -> None:
    pending, reached, completed = history
    found = landed(pending, {"/etc/agentvisor.toml": f"v{reached}"})
    assert found == set(range(completed + 1, reached + 1))


def test_an_unreadable_file_recovers_nothing() -> None:
    assert landed([Intent(1, "/a.toml", None, "x")], {"/a.toml": None}) == set()
