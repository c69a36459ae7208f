"""Intent records of config writes: completed by their entry, recovered or dropped at start."""

from __future__ import annotations

from pathlib import Path

import trio

from agentvisor.events import EventBus, OperatorAction, event_to_dict
from agentvisor.store.writer import StateStore
from tests.integration.store.harness import NOW, count, running_store, settle


async def begin(store: StateStore, config: Path, old: bytes, new: bytes) -> int:
    return await store.begin_config_write(
        str(config),
        old,
        new,
        action="register",
        target="web",
        source="cli",
        message="registered web",
    )


async def test_an_entry_completes_its_intent_and_nothing_is_recovered(tmp_path: Path) -> None:
    config = tmp_path / "agentvisor.toml"
    config.write_bytes(b"new")
    path = tmp_path / "state.db"
    async with running_store(path) as store:
        intent = await begin(store, config, b"old", b"new")
        assert count(path, "config_intents") == 1  # committed before the file is renamed
        bus = EventBus()
        async with trio.open_nursery() as nursery:
            await nursery.start(store.consume, bus)  # the way the entry really comes
            bus.publish(
                OperatorAction(
                    "register", "web", "cli", "ok", "registered web", NOW, intents=(intent,)
                )
            )
            await settle(store)
            nursery.cancel_scope.cancel()
    async with running_store(path) as store:
        assert await store.recover_config_writes() == 0
        events = await store.events()
    assert count(path, "config_intents") == 0
    assert [(event.action, event.details) for event in events] == [("register", {})]


async def test_a_change_in_the_file_is_recovered_and_one_that_did_not_land_is_dropped(
    tmp_path: Path,
) -> None:
    landed, lost = tmp_path / "landed.toml", tmp_path / "lost.toml"
    landed.write_bytes(b"second")
    lost.write_bytes(b"before")
    path = tmp_path / "state.db"
    async with running_store(path) as store:
        await begin(store, landed, b"before", b"first")
        await begin(store, landed, b"first", b"second")  # both landed, one on the other
        await begin(store, lost, b"before", b"after")  # killed before the rename
    async with running_store(path) as store:
        assert await store.recover_config_writes() == 2
        events = await store.events()
    assert count(path, "config_intents") == 0
    assert len(events) == 2
    assert all(event.details == {"recovered": True, "file": str(landed)} for event in events)
    assert all(
        event.message.startswith("registered web (recovered at start-up") for event in events
    )


def test_the_live_stream_does_not_show_intent_ids() -> None:
    event = OperatorAction("register", "web", "api", "ok", "registered web", NOW, intents=(3,))
    assert "intents" not in event_to_dict(event)
