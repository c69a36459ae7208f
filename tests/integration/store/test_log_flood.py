"""Issue 15: a worker flooding its stdout through the real supervisor into a real store.

The 5-minute run at the default rate is ``bench/log_flood.py``; this one floods for 8 s
at five times the default store rate into an 8 MiB cap, long enough for the log index
to go through its generations several times.
"""

from __future__ import annotations

import re
from pathlib import Path

import trio
import trio.testing

from agentvisor.config.load import load_config
from agentvisor.events import EventBus
from agentvisor.store.writer import StateStore, _file_bytes
from agentvisor.supervise.process import open_launcher
from agentvisor.supervise.supervisor import Supervisor
from tests.integration.supervise.test_supervisor import child, wait_for, write_config

MiB = 1024 * 1024
CAP = 8 * MiB


async def test_issue_15_a_flood_keeps_state_db_and_wal_under_the_cap(
    tmp_path: Path,
) -> None:
    agent = (
        f"[agents.flood]\ncommand = {child('stdout_flood.py', '--seconds', '8')}\n"
        "startsecs = 0\nhealth.enabled = false\n"
    )
    config = write_config(tmp_path / "a.toml", agent)
    path = str(tmp_path / "state.db")
    store = StateStore(path, retention_days=7, max_file_bytes=CAP, log_lines_per_second=5000)
    largest = 0
    with trio.fail_after(60):
        async with open_launcher() as launcher, trio.open_nursery() as outer:
            await outer.start(store.run)
            async with trio.open_nursery() as nursery:
                supervisor = Supervisor(
                    load_config(config),
                    bus=EventBus(),
                    launcher=launcher,
                    log_sink=store.record_log_lines,
                )
                await nursery.start(supervisor.run)
                book = supervisor.logbook("flood")
                done: list[str] = []

                def finished() -> bool:
                    done[:] = [line.text for line in book.tail(5, stream="stderr")]
                    return any(text.startswith("done") for text in done)

                async def watch_size() -> None:  # a sampler, not a wait: it never ends by itself
                    nonlocal largest
                    while True:
                        largest = max(largest, _file_bytes(path))
                        await trio.sleep(0.02)

                nursery.start_soon(watch_size)
                await wait_for(supervisor, finished)
                await store.flush()
                await store.run_retention()
                largest = max(largest, _file_bytes(path))
                await supervisor.shutdown()
                nursery.cancel_scope.cancel()
            stats = store.statistics()
            (count,) = [re.search(r"done (\d+)", text) for text in done if "done" in text]
            assert count is not None
            flooded = int(count.group(1))
            (newest,) = await store.logs("flood", limit=1, stream="stdout")
            found = await store.search_logs(newest.text.split(" x")[0] + " ", limit=1)
            outer.cancel_scope.cancel()
    assert largest <= CAP, f"state.db + WAL reached {largest / MiB:.1f} MiB"
    assert stats.log_sampled_out > 0
    assert stats.log_lines_written + stats.log_sampled_out + stats.dropped >= flooded
    # The newest lines win: the last one stored is from the worker's last writes (600 lines
    # each; the last pipe read may find no token left, so not necessarily the very last).
    numbered = re.match(r"line (\d+) ", newest.text)
    assert numbered is not None
    assert int(numbered.group(1)) >= flooded - 6000
    assert [line.id for line in found] == [newest.id]  # and the search finds it
