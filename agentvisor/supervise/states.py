"""The instance states of supervisord, with their documented meanings (pure).

``docs/state-machine.md`` is generated from ``TRANSITIONS`` by
``python -m agentvisor.supervise.states``; a test keeps the two in step.
"""

from __future__ import annotations

import enum


class ProcessState(enum.StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"
    STOPPING = "stopping"
    EXITED = "exited"
    FATAL = "fatal"


class DrainReason(enum.StrEnum):
    """Why an instance's clients are moved away before it stops (the router tells them)."""

    RESTART = "restart"  # a rolling restart an operator asked for
    RELOAD = "reload"  # a reload changed the agent's settings: a rolling restart
    SCALE_DOWN = "scale-down"  # the replica is retired (an operator's scale, the autoscaler)
    REMOVAL = "removal"  # the agent was removed from the config


MEANINGS: dict[ProcessState, str] = {
    ProcessState.STOPPED: "not running: never started, or stopped by an operator",
    ProcessState.STARTING: "spawned; waiting for `startsecs` and the first passing health check",
    ProcessState.RUNNING: "started and considered up",
    ProcessState.BACKOFF: "a start or a run failed; waiting the backoff delay to try again",
    ProcessState.STOPPING: "the stop signal was sent; SIGKILL to the group after `stopwaitsecs`",
    ProcessState.EXITED: "exited from running and `autorestart` says not to restart it",
    ProcessState.FATAL: "failed more than `startretries` times in a row; "
    "tried again after `fatal_cooldown`",
}


#: Instances in these states have a live process.
PROCESS_STATES = frozenset({ProcessState.STARTING, ProcessState.RUNNING, ProcessState.STOPPING})

#: States an instance rests in until an event or a timer moves it.
SETTLED_STATES = frozenset(
    {
        ProcessState.STOPPED,
        ProcessState.RUNNING,
        ProcessState.BACKOFF,
        ProcessState.EXITED,
        ProcessState.FATAL,
    }
)

#: (from, event, to, what happens): the table the machine implements and the docs show.
TRANSITIONS: tuple[tuple[str, str, str, str], ...] = (
    (
        "stopped / exited / fatal / backoff",
        "start",
        "starting",
        "spawn; operator start resets failures",
    ),
    (
        "starting",
        "spawn failed or exited",
        "backoff",
        "failures += 1; retry after the backoff delay",
    ),
    ("starting", "spawn failed or exited", "fatal", "when failures > startretries"),
    ("starting", "startsecs passed and first health check passed", "running", ""),
    ("starting", "no passing health check in time", "stopping", "counted as a failed start"),
    (
        "running",
        "exited, restart wanted by autorestart",
        "starting / backoff",
        "first failure after stable_secs of uptime restarts at once; a crash loop backs off",
    ),
    ("running", "exited, restart not wanted", "exited", ""),
    ("running", "failures > startretries", "fatal", "a crash loop after running ends in fatal too"),
    (
        "running",
        "unhealthy_threshold checks failed",
        "stopping",
        "when autorestart is not never; then restarted like a crash",
    ),
    ("running", "stable_secs of uptime", "running", "failures and backoff reset"),
    ("starting / running", "stop", "stopping", "stopsignal to the process group"),
    ("starting / running", "restart", "stopping", "then starting at once when the process is gone"),
    ("stopping", "stopwaitsecs passed", "stopping", "SIGKILL to the whole process group"),
    ("stopping", "exited", "stopped / starting", "starting when a restart is pending"),
    ("backoff", "backoff delay passed", "starting", "spawn"),
    ("backoff / exited / fatal", "stop", "stopped", ""),
    ("fatal", "fatal_cooldown passed", "starting", "failures reset; 0 disables the retry"),
)


def render_markdown() -> str:
    lines = [
        "# Instance state machine",
        "",
        "Generated from `agentvisor/supervise/states.py` by",
        "`python -m agentvisor.supervise.states > docs/state-machine.md`; do not edit by hand.",
        "",
        "| state | meaning |",
        "| --- | --- |",
    ]
    lines += [f"| {state.value} | {MEANINGS[state]} |" for state in ProcessState]
    lines += ["", "| from | event | to | what happens |", "| --- | --- | --- | --- |"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in TRANSITIONS]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_markdown(), end="")
