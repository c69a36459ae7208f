"""Issue 15: exits the operator asked for are audited as expected, with their reason.

A real supervisor runs real children (killed by SIGTERM, so their exit status
is not one of ``exitcodes``) and publishes to a real state store on a SQLite
file; the test reads the audit log back from the store.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import trio
import trio.testing

from agentvisor.config.load import load_config
from agentvisor.events import EventBus
from agentvisor.store.records import EventRecord
from agentvisor.store.writer import StateStore
from agentvisor.supervise.process import open_launcher
from agentvisor.supervise.supervisor import Supervisor
from tests.integration.supervise.test_supervisor import child, pids, wait_state, write_config


def _agent(name: str, *, replicas: int = 1, mark: str = "a") -> str:
    return (
        f"[agents.{name}]\ncommand = {child('sleeper.py', '--on-term', 'die')}\n"
        f"startsecs = 0\nhealth.enabled = false\nreplicas = {replicas}\n"
        f"environment = {{ MARK = '{mark}' }}\n"
    )


async def _exits(store: StateStore, service: str) -> list[EventRecord]:
    await trio.testing.wait_all_tasks_blocked()
    await store.flush()
    found = await store.events(1000, service=service, kinds=["instance.exited"])
    return sorted(found, key=lambda event: event.at)


async def test_issue_15_operator_stops_and_shutdown_are_expected_crashes_are_not(
    tmp_path: Path,
) -> None:
    names = ("stopped", "restarted", "scaled", "reloaded", "crashed", "removed", "left")
    agents = {name: _agent(name, replicas=2 if name == "scaled" else 1) for name in names}
    config = write_config(tmp_path / "a.toml", "".join(agents.values()))
    bus = EventBus()
    store = StateStore(str(tmp_path / "state.db"), retention_days=7)
    with trio.fail_after(30):
        async with open_launcher() as launcher, trio.open_nursery() as outer:
            await outer.start(store.run)
            await outer.start(store.consume, bus)
            async with trio.open_nursery() as nursery:
                supervisor = Supervisor(load_config(config), bus=bus, launcher=launcher)
                await nursery.start(supervisor.run)
                for name in names:
                    await wait_state(supervisor, name, "running")
                await supervisor.stop("stopped", source="api")
                await supervisor.restart("restarted", source="cli")
                (crashed_pid,) = pids(supervisor.service("crashed"))
                assert crashed_pid is not None
                os.kill(crashed_pid, signal.SIGKILL)
                await wait_state(supervisor, "crashed", "running")
                agents["scaled"] = _agent("scaled", replicas=1)
                agents["reloaded"] = _agent("reloaded", mark="b")
                del agents["removed"]
                write_config(config, "".join(agents.values()))
                await supervisor.reload(source="signal")
                await wait_state(supervisor, "reloaded", "running")
                # The reload retires the second "scaled" replica in the background: its exit
                # is recorded before the shutdown stops the rest (under the fail_after above).
                while not any(
                    event.details["reason"] == "scaled down"
                    for event in await _exits(store, "scaled")
                ):
                    await trio.sleep(0.05)
                await supervisor.shutdown()
                nursery.cancel_scope.cancel()
            exits = {name: await _exits(store, name) for name in names}
            outer.cancel_scope.cancel()

    def seen(name: str) -> list[tuple[str | None, str]]:
        return [(event.outcome, event.details["reason"]) for event in exits[name]]

    stop = ("expected", "stopped by api")
    shutdown = ("expected", "agentvisor is shutting down")
    assert seen("stopped") == [stop]
    assert seen("restarted") == [("expected", "restarted by cli"), shutdown]
    assert seen("crashed") == [("unexpected", "killed by SIGKILL"), shutdown]
    assert seen("scaled") == [("expected", "scaled down"), shutdown]
    assert seen("reloaded") == [("expected", "config changed"), shutdown]
    assert seen("removed") == [("expected", "removed from the config")]
    assert seen("left") == [shutdown]
    (crash,) = [event for event in exits["crashed"] if event.outcome == "unexpected"]
    assert crash.message.startswith(f"pid {crashed_pid} exited with -9 (unexpected) after")
    assert all(event.details["returncode"] == -signal.SIGTERM for event in exits["left"])
