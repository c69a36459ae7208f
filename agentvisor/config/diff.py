"""What a reload has to do: the difference of two configs as a typed plan (pure).

Models are frozen and compare by value, so the plan is a comparison, field by
field (supervisord's ``diff_to_active``, with a type instead of three lists).
An agent's changed fields decide what happens to it:

- a field of :data:`PROCESS_FIELDS` → ``restart`` (rolling, one replica at a time);
- a field of :data:`SCALE_FIELDS` → ``scaled`` (start or stop replicas, keep the others);
- any other field → ``live`` (applied to the running instances), unless it restarts.

An agent can be in ``restart`` and ``scaled``, or in ``scaled`` and ``live``;
``unchanged`` holds the agents of both configs that did not change at all.
"""

from __future__ import annotations

import attrs

from agentvisor.config.model import AgentConfig, Config

__all__ = ["PROCESS_FIELDS", "SCALE_FIELDS", "ReloadPlan", "changed_fields", "plan_reload"]

#: Agent fields whose change needs the worker processes restarted.
PROCESS_FIELDS = frozenset(
    {
        "agent",
        "command",
        "environment",
        "directory",
        "user",
        "host",
        "port",
        "runtime",
        "session_timeout",
        "on_busy",
    }
)

#: Agent fields (``autoscale.*`` for nested ones) that change how many replicas run.
#: ``[router]`` keys read only when the router starts listening.
ROUTER_RESTART_FIELDS = ("bind", "tls_cert", "tls_key")
SCALE_FIELDS = frozenset({"replicas", "autoscale", "autoscale.min", "autoscale.max"})

#: Nested tables whose changes are listed per key (``health.interval``).
_NESTED = ("health", "autoscale")


@attrs.frozen
class ReloadPlan:
    """Agent names per action, in the order of the new file (removed: of the old one)."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    restart: tuple[str, ...] = ()
    scaled: tuple[str, ...] = ()
    live: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    router_changed: bool = False
    #: ``[router]`` keys that only a restart applies (the listeners); the rest apply
    #: to new connections at once.
    router_restart_fields: tuple[str, ...] = ()
    routes_changed: bool = False
    admin_changed: bool = False
    supervisor_changed: bool = False
    #: For each agent present in both configs and changed: its changed fields.
    changed_fields: dict[str, tuple[str, ...]] = attrs.field(factory=dict)

    @property
    def is_empty(self) -> bool:
        """Whether the reload changes nothing at all."""
        return not (
            self.added
            or self.removed
            or self.changed_fields
            or self.router_changed
            or self.routes_changed
            or self.admin_changed
            or self.supervisor_changed
        )


def changed_fields(old: AgentConfig, new: AgentConfig) -> tuple[str, ...]:
    """Names of the fields that differ; ``health.interval`` style inside nested tables."""
    changed: list[str] = []
    for attribute in attrs.fields(AgentConfig):
        before, after = getattr(old, attribute.name), getattr(new, attribute.name)
        if before == after:
            continue
        if attribute.name in _NESTED and before is not None and after is not None:
            changed.extend(
                f"{attribute.name}.{inner.name}"
                for inner in attrs.fields(type(before))
                if getattr(before, inner.name) != getattr(after, inner.name)
            )
        else:
            changed.append(attribute.name)
    return tuple(changed)


def plan_reload(old: Config, new: Config) -> ReloadPlan:
    """What applying ``new`` over the running ``old`` takes."""
    restart: list[str] = []
    scaled: list[str] = []
    live: list[str] = []
    unchanged: list[str] = []
    fields: dict[str, tuple[str, ...]] = {}
    for name, agent in new.agents.items():
        if name not in old.agents:
            continue
        changed = changed_fields(old.agents[name], agent)
        if not changed:
            unchanged.append(name)
            continue
        fields[name] = changed
        if any(field in PROCESS_FIELDS for field in changed):
            restart.append(name)
        if any(field in SCALE_FIELDS for field in changed):
            scaled.append(name)
        restarts = name in restart
        if not restarts and any(f not in PROCESS_FIELDS | SCALE_FIELDS for f in changed):
            live.append(name)
    return ReloadPlan(
        added=tuple(name for name in new.agents if name not in old.agents),
        removed=tuple(name for name in old.agents if name not in new.agents),
        restart=tuple(restart),
        scaled=tuple(scaled),
        live=tuple(live),
        unchanged=tuple(unchanged),
        router_changed=old.router != new.router,
        router_restart_fields=tuple(
            name
            for name in ROUTER_RESTART_FIELDS
            if getattr(old.router, name) != getattr(new.router, name)
        ),
        routes_changed=old.routes != new.routes,
        admin_changed=old.admin != new.admin,
        supervisor_changed=old.supervisor != new.supervisor,
        changed_fields=fields,
    )
