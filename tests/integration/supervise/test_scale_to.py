"""``Supervisor.scale_to``, the autoscaler's hook, on real processes: storms of changes."""

from __future__ import annotations

from pathlib import Path

import trio

from agentvisor.supervise.supervisor import Supervisor
from tests.integration.supervise.test_supervisor import child, running, wait_for, write_config

#: Decides once at start (holding min), then not for an hour: the test drives scale_to.
AUTOSCALE = "autoscale.min = 1\nautoscale.max = 3\nautoscale.decision_interval = 3600\n"


def replicas(supervisor: Supervisor, state: str = "running") -> list[int]:
    view = supervisor.service("slow")
    return [i.replica for i in view.instances if i.state == state]


async def test_a_scale_up_while_replicas_still_stop_brings_them_all_back(
    tmp_path: Path,
) -> None:
    """Replicas that take ``stopwaitsecs`` to stop (SIGTERM ignored) are scaled away, and
    scaled back before they are gone: their numbers (and ports) are free only then, and
    the missing replicas start at that moment."""
    config = write_config(
        tmp_path / "a.toml",
        f"[agents.slow]\ncommand = {child('sigterm_ignorer.py')}\nstartsecs = 0\n"
        f"stopwaitsecs = 1\nhealth.enabled = false\n{AUTOSCALE}",
    )
    async with running(config) as supervisor:
        with trio.fail_after(20):
            await wait_for(supervisor, lambda: replicas(supervisor) == [0])
            supervisor.scale_to("slow", 3)
            await wait_for(supervisor, lambda: replicas(supervisor) == [0, 1, 2])
            for _ in range(3):  # a storm: down, up, down, up before anything has stopped
                supervisor.scale_to("slow", 1)
                supervisor.scale_to("slow", 3)
            supervisor.scale_to("slow", 1)
            supervisor.scale_to("slow", 3)
            await wait_for(supervisor, lambda: replicas(supervisor) == [0, 1, 2])
            service = supervisor.services_by_name()["slow"]
            await wait_for(supervisor, lambda: not service.retiring)
        view = supervisor.service("slow")
        assert [i.replica for i in view.instances] == [0, 1, 2]
        assert len({i.port for i in view.instances}) == 3
        assert view.desired_replicas == 3
