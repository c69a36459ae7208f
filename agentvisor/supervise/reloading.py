"""What a reload did, or would do: the plan's outcome as the API and the log show it (pure).

The plan itself is :func:`agentvisor.config.diff.plan_reload`; this module adds
what only the supervisor knows (rolling restarts that stopped, sections that
wait for the next start) and whether it was a dry run.
"""

from __future__ import annotations

from typing import Any

import attrs

from agentvisor.config.diff import ReloadPlan
from agentvisor.config.interpolate import EnvironmentUse
from agentvisor.config.model import Config

__all__ = ["ReloadResult", "sections_needing_restart"]


@attrs.frozen
class ReloadResult:
    """What a reload did: the plan's outcome, and what it could not do.

    A dry run (``dry_run``) carries the plan a reload would carry out now, and did
    nothing; ``environment`` names the ``${VAR}`` the file references, as agentvisor's
    own environment has them.
    """

    plan: ReloadPlan
    failed: tuple[str, ...] = ()  # rolling restarts that stopped: "name: why"
    needs_restart: tuple[str, ...] = ()  # sections that take effect on the next start
    dry_run: bool = False
    config_path: str = ""
    environment: EnvironmentUse = attrs.field(factory=EnvironmentUse)

    def to_dict(self) -> dict[str, Any]:
        """The API's shape: names per kind of change, and whether anything changed."""
        plan = self.plan
        lists = {
            "added": plan.added,
            "removed": plan.removed,
            "restarted": plan.restart,
            "scaled": plan.scaled,
            "updated": plan.live,
            "failed": self.failed,
            "needs_restart": self.needs_restart,
        }
        data: dict[str, Any] = {key: list(names) for key, names in lists.items()}
        data["changed"] = not plan.is_empty
        data["dry_run"] = self.dry_run
        data["config_path"] = self.config_path
        data["environment"] = self.environment.to_dict()
        return data

    def describe(self) -> str:
        plan = self.plan
        parts = [
            f"{label}: {', '.join(names)}"
            for label, names in (
                ("added", plan.added),
                ("removed", plan.removed),
                ("restarted", plan.restart),
                ("scaled", plan.scaled),
                ("updated", plan.live),
            )
            if names
        ]
        parts += [f"FAILED {failure}" for failure in self.failed]
        parts += [f"{section} changes apply on the next start" for section in self.needs_restart]
        return "; ".join(parts) if parts else "no change"


def sections_needing_restart(plan: ReloadPlan, old: Config, new: Config) -> tuple[str, ...]:
    """The changed parts of the file that a reload cannot apply (they wait for a start)."""
    return tuple(
        section
        for section, changed in (
            ("[admin]", plan.admin_changed),
            (
                "[router] " + ", ".join(plan.router_restart_fields),
                bool(plan.router_restart_fields),
            ),
            ("state_dir", new.supervisor.state_dir != old.supervisor.state_dir),
            ("[cluster]", new.cluster != old.cluster),
        )
        if changed
    )
