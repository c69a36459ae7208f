"""The autoscaler's shell: signals in, the policy's decision out, applied by the supervisor.

A task in the supervisor's nursery. Every agent with ``[agents.NAME.autoscale]``
gets a decision every ``interval`` seconds from :mod:`supervise.autoscale`,
fed with each replica's sessions and turns in flight (the router's live
connections, or the worker's ``/stats`` when it reports more), its CPU and RSS
samples and its state, and with the clients the router holds waiting for a
replica. A decision that changes the count is published as an ``autoscaler``
audit event and applied through the supervisor's scale path: new replicas
start on their allocated ports (the router uses them once healthy); a shrink
retires the replicas with the fewest sessions, each drained by the router
first (no new clients, turns in flight end, sessions moved with
``service_switched``) under ``drain_timeout``, then stopped.

The router is wired in by the daemon (supervise may not import it):
``load`` gives ``{instance_id: (sessions, turns)}``, ``waiting`` gives
``{service: clients held}``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import trio
from attrs import define, evolve

from agentvisor.config.model import AutoscaleConfig
from agentvisor.events import OperatorAction
from agentvisor.supervise.autoscale import (
    Decision,
    PolicyState,
    ReplicaSignals,
    Signals,
    decide,
    initial_state,
    pick_victims,
)
from agentvisor.supervise.states import ProcessState

if TYPE_CHECKING:
    from agentvisor.supervise.service import Service
    from agentvisor.supervise.supervisor import Supervisor

log = logging.getLogger("agentvisor.autoscaler")

#: Longest sleep between rounds, so a config reload that adds autoscaling is seen soon.
IDLE_INTERVAL = 1.0

RouterLoad = Callable[[], Mapping[str, tuple[int, int]]]
RouterWaiting = Callable[[], Mapping[str, int]]


def _no_load() -> Mapping[str, tuple[int, int]]:
    return {}


def _no_waiting() -> Mapping[str, int]:
    return {}


@define
class Track:
    """One autoscaled agent's policy state, last decision and last change."""

    config: AutoscaleConfig
    state: PolicyState
    next_at: float = 0.0
    last: Decision | None = None
    last_change: Decision | None = None
    last_change_message: str = ""
    last_at: float = 0.0  # wall clock of ``last`` / ``last_change``
    last_change_at: float = 0.0
    decisions: int = 0


class Autoscaler:
    def __init__(self, supervisor: Supervisor, *, clock: Callable[[], float] | None = None) -> None:
        self._supervisor = supervisor
        self._clock = clock or trio.current_time
        self.load: RouterLoad = _no_load
        self.waiting: RouterWaiting = _no_waiting
        self.wake = trio.Event()  # the router sets it when a client starts waiting
        self._tracks: dict[str, Track] = {}

    # -- queries ----------------------------------------------------------------------

    def status(self, name: str) -> dict[str, Any] | None:
        """The policy's state for the API and ``agentvisorctl``; None when not autoscaled."""
        track = self._tracks.get(name)
        service = self._supervisor.services_by_name().get(name)
        if service is None or service.config.autoscale is None:
            return None
        config = service.config.autoscale
        data: dict[str, Any] = {
            "min": config.min,
            "max": config.max,
            "target_sessions": config.target_sessions,
            "target_turns": config.target_turns,
            "max_cpu_percent": config.max_cpu_percent,
            "scale_up_cooldown": config.scale_up_cooldown,
            "scale_down_cooldown": config.scale_down_cooldown,
            "stabilization": config.stabilization,
            "decision_interval": config.decision_interval,
            "cold_start_wait": config.cold_start_wait,
            "desired": service.desired,
            # scaled away, still draining or stopping (no longer among the instances)
            "retiring": sorted(service.retiring),
            "decisions": track.decisions if track else 0,
            "last_decision": _decision_dict(track.last, track.last_at)
            if track and track.last
            else None,
            "last_change": None,
        }
        if track is not None and track.last_change is not None:
            change = _decision_dict(track.last_change, track.last_change_at)
            change["message"] = track.last_change_message
            data["last_change"] = change
        return data

    def decisions(self) -> dict[str, Decision]:
        """The last decision of every autoscaled agent (for /metrics)."""
        return {name: t.last for name, t in self._tracks.items() if t.last is not None}

    # -- running ------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            now = self._clock()
            self.step(now)
            due = [t.next_at for t in self._tracks.values()]
            pause = min([IDLE_INTERVAL, *(d - now for d in due)])
            with trio.move_on_after(max(pause, 0.01)):
                await self.wake.wait()
            if self.wake.is_set():
                self.wake = trio.Event()

    def step(self, now: float) -> None:
        """One round: a decision for every autoscaled agent that is due (or has a waiter)."""
        services = self._supervisor.services_by_name()
        for name in [n for n in self._tracks if n not in services]:
            del self._tracks[name]
        load, waiting = self.load(), self.waiting()
        for name, service in services.items():
            config = service.config.autoscale
            if config is None:
                self._tracks.pop(name, None)
                continue
            track = self._tracks.get(name)
            if track is None or track.config != config:
                state = track.state if track else initial_state(config)
                track = Track(config, evolve(state, desired=service.desired))
                self._tracks[name] = track
            held = waiting.get(name, 0)
            if now < track.next_at and not (held and service.desired == 0):
                continue
            track.next_at = now + config.decision_interval
            if not self._may_scale(service):
                continue
            signals = Signals(_replica_signals(service, load), held)
            track.state = evolve(track.state, desired=service.desired)
            decision, track.state = decide(config, track.state, signals, now)
            track.last, track.decisions = decision, track.decisions + 1
            track.last_at = time.time()
            if decision.scales:
                self._apply(service, track, decision, signals)

    def _may_scale(self, service: Service) -> bool:
        """Not while an operator's start/stop/restart runs, nor when the agent was stopped."""
        if service.operation is not None:
            return False
        instances = service.instances
        stopped = (ProcessState.STOPPED, ProcessState.EXITED)
        return not instances or any(i.state not in stopped for i in instances)

    def _apply(self, service: Service, track: Track, decision: Decision, signals: Signals) -> None:
        previous = service.desired
        surplus = len(service.instances) - decision.desired
        victims = pick_victims(signals.replicas, surplus)
        message = decision.describe(previous)
        if victims:
            message += "; retiring " + ", ".join(f"{service.name}:{r}" for r in victims)
        track.last_change, track.last_change_message = decision, message
        track.last_change_at = track.last_at
        log.info("autoscale %s: %s", service.name, message)
        details = _decision_dict(decision, track.last_at)
        details.update(previous=previous, retiring=[f"{service.name}:{r}" for r in victims])
        self._supervisor.bus.publish(
            OperatorAction(
                "scale", service.name, "autoscaler", "ok", message, time.time(), details=details
            )
        )
        self._supervisor.scale_to(service.name, decision.desired, victims)


def _replica_signals(
    service: Service, load: Mapping[str, tuple[int, int]]
) -> tuple[ReplicaSignals, ...]:
    replicas = []
    for instance in service.instances:
        sessions, turns = load.get(f"{service.name}:{instance.replica}", (0, 0))
        stats = instance.worker_stats if instance.state is ProcessState.RUNNING else None
        if stats is not None:  # clients may reach the worker directly, not through the router
            # Its open connections, not its active sessions: a session outlives its client by
            # session_timeout (to be resumed), and counting those would hold replicas that
            # long after the clients left.
            worker_turns = stats.get("turns", {})
            sessions = max(sessions, int(stats.get("connections", 0)))
            turns = max(turns, int(worker_turns.get("running", 0) + worker_turns.get("queued", 0)))
        sample = instance.sample
        replicas.append(
            ReplicaSignals(
                replica=instance.replica,
                state=str(instance.state),
                sessions=sessions,
                turns=turns,
                cpu_percent=sample.cpu_percent if sample else None,
                rss_bytes=sample.rss_bytes if sample else None,
            )
        )
    return tuple(replicas)


def _decision_dict(decision: Decision, at: float) -> dict[str, Any]:
    return {
        "action": str(decision.action),
        "desired": decision.desired,
        "wanted": decision.wanted,
        "reason": decision.reason,
        "signals": {
            "sessions": decision.sessions,
            "turns": decision.turns,
            "running": decision.running,
            "cpu_percent": decision.cpu_percent,
            "waiting_clients": decision.waiting_clients,
            "by_signal": dict(decision.by_signal),
        },
        "at": at,
    }
