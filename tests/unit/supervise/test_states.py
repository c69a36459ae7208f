"""The state names and the generated state-machine page."""

from __future__ import annotations

from pathlib import Path

from agentvisor.supervise.states import PROCESS_STATES, TRANSITIONS, ProcessState, render_markdown

DOC = Path(__file__).parents[3] / "docs" / "state-machine.md"


def test_docs_state_machine_page_is_the_rendered_table() -> None:
    # regenerate with: python -m agentvisor.supervise.states > docs/state-machine.md
    assert DOC.read_text(encoding="utf-8") == render_markdown()


def test_state_names_are_supervisords() -> None:
    assert [s.value for s in ProcessState] == [
        "stopped",
        "starting",
        "running",
        "backoff",
        "stopping",
        "exited",
        "fatal",
    ]


def test_process_states_are_those_with_a_live_process() -> None:
    assert {ProcessState.STARTING, ProcessState.RUNNING, ProcessState.STOPPING} == PROCESS_STATES


def test_every_state_has_a_row_in_the_rendered_page() -> None:
    page = render_markdown()

    assert all(f"| {state.value} |" in page for state in ProcessState)


def test_transitions_name_only_known_states() -> None:
    names = {state.value for state in ProcessState}

    for source, _event, target, _what in TRANSITIONS:
        for part in (*source.split(" / "), *target.split(" / ")):
            assert part in names, part
