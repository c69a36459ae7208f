"""``POST /api/v1/reload?dry_run=true`` (issue 11.6): the plan a reload would carry out, and
nothing done: no process touched, no service added, nothing published for the audit log."""

from __future__ import annotations

from pathlib import Path

import trio

from agentvisor.events import ConfigReloaded, Event, OperatorAction
from tests.integration.admin.harness import all_running, running_admin, sleeper, write_config
from tests.integration.admin.stack import data_of, error_of

VARIABLE = "AGENTVISOR_TEST_DRY_RUN"


def _recorded(event: Event) -> bool:
    return isinstance(event, (ConfigReloaded, OperatorAction))


async def test_a_dry_run_answers_the_plan_and_changes_nothing(tmp_path: Path) -> None:
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha") + sleeper("beta"))
    async with running_admin(config) as admin, admin.unix() as client:
        await all_running(admin)
        pids = [i.pid for v in admin.supervisor.services() for i in v.instances]
        edited = sleeper("alpha", tags=("x",), extra=f'description = "${{{VARIABLE}:-none}}"')
        write_config(config, edited + sleeper("gamma"))
        written = config.read_bytes()
        async with admin.supervisor.bus.subscribe(_recorded) as recorded:
            preview = data_of(await client.post("/api/v1/reload?dry_run=true"))
            assert (preview["added"], preview["removed"], preview["updated"]) == (
                ["gamma"],
                ["beta"],
                ["alpha"],
            )
            assert preview["dry_run"] is True
            assert preview["config_path"] == str(config)
            assert preview["environment"] == {"set": [], "unset": [VARIABLE]}
            views = admin.supervisor.services()
            assert [v.name for v in views] == ["alpha", "beta"]
            assert [i.pid for v in views for i in v.instances] == pids
            assert admin.supervisor.service("alpha").tags == ()
            assert config.read_bytes() == written
            # The real reload is the first thing recorded: the dry run published nothing.
            result = data_of(await client.post("/api/v1/reload"))
            assert result["dry_run"] is False
            assert result["added"] == ["gamma"]
            with trio.fail_after(10):
                first = await recorded.receive()
        assert isinstance(first, ConfigReloaded)
        assert first.added == ("gamma",)


async def test_a_dry_run_of_an_invalid_file_gives_the_reloads_errors(tmp_path: Path) -> None:
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha"))
    async with running_admin(config) as admin, admin.unix() as client:
        await all_running(admin)
        config.write_text(config.read_text() + "\n[agents.bad]\ncommand = 'x'\nreplica = 2\n")
        async with admin.supervisor.bus.subscribe(_recorded) as recorded:
            error = error_of(await client.post("/api/v1/reload?dry_run=1"), 422, "CONFIG_INVALID")
            assert any('unknown key "replica"' in line for line in error["details"]["errors"])
            bad = error_of(
                await client.post("/api/v1/reload?dry_run=maybe"), 400, "INVALID_REQUEST"
            )
            assert bad["details"]["parameter"] == "dry_run"
            assert [v.name for v in admin.supervisor.services()] == ["alpha"]
            # A real (rejected) reload is recorded, and is the first thing that is.
            error_of(await client.post("/api/v1/reload"), 422, "CONFIG_INVALID")
            with trio.fail_after(10):
                first = await recorded.receive()
        assert isinstance(first, ConfigReloaded)
        assert first.ok is False
