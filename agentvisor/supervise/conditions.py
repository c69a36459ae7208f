"""What the supervisor's operations wait for and decide from instance state (pure).

The predicates are conditions on an instance's :class:`Machine` (``wait_until``);
:func:`scale_plan` is which replicas a scale retires and which it adds.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import attrs

from agentvisor.supervise.machine import Machine
from agentvisor.supervise.policy import Health
from agentvisor.supervise.states import ProcessState

__all__ = ["ScalePlan", "at_rest", "ready", "scale_plan", "up_or_failed"]

S = ProcessState


def at_rest(m: Machine) -> bool:
    return m.state in (S.STOPPED, S.EXITED, S.FATAL)


def up_or_failed(m: Machine) -> bool:
    """Running, or a start that did not work out (backoff: failed twice; fatal; exited)."""
    return m.state in (S.RUNNING, S.BACKOFF, S.FATAL, S.EXITED, S.STOPPED)


def ready(m: Machine) -> bool:
    return m.state is S.RUNNING and m.health.status is not Health.UNHEALTHY


@attrs.frozen
class ScalePlan:
    retire: tuple[int, ...]  # indices into the current replicas, highest first
    add: tuple[int, ...]  # replica numbers to create, lowest first


def scale_plan(
    replicas: Sequence[int],
    desired: int,
    *,
    victims: Collection[int] = (),
    retiring: Collection[int] = (),
    has_port: Collection[int],
) -> ScalePlan:
    """Retire replicas beyond ``desired`` (``victims`` first, then the highest); add the
    missing ones on the lowest replica numbers that are neither taken nor retiring and
    have a port (``has_port``)."""
    order = sorted(range(len(replicas)), key=lambda i: (replicas[i] in victims, i))
    retire = tuple(sorted(order[desired:], reverse=True))
    kept = len(replicas) - len(retire)
    taken = {replicas[i] for i in order[:desired]} | set(retiring)
    taken |= {replicas[i] for i in retire}  # until they have stopped
    free = [r for r in range(desired + len(taken)) if r not in taken and r in has_port]
    return ScalePlan(retire, tuple(free[: max(desired - kept, 0)]))
