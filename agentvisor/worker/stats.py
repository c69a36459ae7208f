"""Counters of one worker process, and the ``GET /stats`` document built from them (pure)."""

from __future__ import annotations

from typing import Any

from attrs import define


@define
class WorkerStats:
    started_at: float  # the runtime's clock when the worker started
    sessions_total: int = 0  # created or resumed from the store by this process
    sessions_completed: int = 0  # closed by the client or by timeout
    turns_total: int = 0  # started
    turns_running: int = 0
    turns_errors: int = 0
    turns_cancelled: int = 0
    turns_finished: int = 0
    turn_seconds: float = 0.0  # summed durations of the finished turns
    connections: int = 0  # open WebSocket connections
    connections_total: int = 0

    def turn_started(self) -> None:
        self.turns_total += 1
        self.turns_running += 1

    def turn_finished(self, duration: float, *, error: bool, cancelled: bool) -> None:
        self.turns_running -= 1
        self.turns_finished += 1
        self.turn_seconds += duration
        self.turns_errors += error
        self.turns_cancelled += cancelled

    def snapshot(
        self, *, active_sessions: int, queued_turns: int, now: float, in_use_sessions: int = 0
    ) -> dict[str, Any]:
        finished = self.turns_finished
        return {
            "sessions": {
                "active": active_sessions,
                # with a client attached or a turn: the rest may be let go at max_sessions
                "in_use": in_use_sessions,
                "total": self.sessions_total,
                "completed": self.sessions_completed,
            },
            "turns": {
                "total": self.turns_total,
                "running": self.turns_running,
                "errors": self.turns_errors,
                "avg_duration": round(self.turn_seconds / finished, 6) if finished else 0.0,
                "cancelled": self.turns_cancelled,
                "queued": queued_turns,
            },
            "connections": self.connections,
            "uptime": round(now - self.started_at, 3),
        }
