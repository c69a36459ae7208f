"""The Markdown tables of supervisor_bench: medians, ratios, goals.

Sessions come in as plain dicts (``attrs.asdict`` of ``Session``), so a saved
JSON file can be rendered again: ``python bench/report.py results/FILE.json``.
Ratios are agentvisor / supervisord on the medians. The goals are those of the
issue; the reference figures (supervisord 1,015 ms, PM2 13.5 ms) are quoted
there.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Callable, Sequence
from typing import Any

MiB = 1024 * 1024
PM2_REPLACE_SECONDS = 0.0135  # PM2's replacement latency quoted in the issue
START_STOP_RATIO = 0.25  # start and stop in at most 1/4 of supervisord's time
IDLE_CPU_PERCENT = 1.0  # of one core, with sampling on
RSS_MARGIN_BYTES = 40 * MiB  # at most supervisord's RSS + 40 MiB
FLAT_BYTES = 1 * MiB  # "flat": RSS grew by at most this much over the idle window

A, B = "agentvisor", "supervisord"
Row = list[str]


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def p90(values: Sequence[float]) -> float | None:
    if len(values) < 2:
        return values[0] if values else None
    return statistics.quantiles(values, n=10, method="inclusive")[-1]


def _ok(sessions: list[dict[str, Any]], name: str, workers: int) -> list[dict[str, Any]]:
    return [
        s
        for s in sessions
        if s["supervisor"] == name and s["workers"] == workers and s["error"] is None
    ]


def _values(sessions: list[dict[str, Any]], key: str) -> list[float]:
    return [s[key] for s in sessions if s[key] is not None]


def _pooled(sessions: list[dict[str, Any]], key: str) -> list[float]:
    return [value for s in sessions for value in s[key]]


def _paired_ratio(
    a_sessions: list[dict[str, Any]], b_sessions: list[dict[str, Any]], key: str
) -> float | None:
    """Median over rounds of agentvisor / supervisord within the same round.

    The two sessions of a round ran back to back, so their ratio cancels most
    of the load that other programs put on the machine at that time.
    """
    b_by_round = {s["round"]: s[key] for s in b_sessions if s[key]}
    ratios = [
        s[key] / b_by_round[s["round"]]
        for s in a_sessions
        if s[key] is not None and s["round"] in b_by_round
    ]
    return median(ratios)


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or not b else f"{a / b:.2f}"


def _yes(met: bool | None) -> str:
    return "-" if met is None else ("**yes**" if met else "no")


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} s"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f} ms"


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value / MiB:.1f}"


def _table(header: Row, rows: list[Row]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _processes(sessions: list[dict[str, Any]]) -> str:
    counts = [s.get("processes", 0) for s in sessions if s.get("processes")]
    return f"{min(counts)} to {max(counts)} processes" if counts else "? processes"


def render_report(info: dict[str, Any], sessions: list[dict[str, Any]]) -> str:
    counts = sorted({s["workers"] for s in sessions})
    by = {(name, n): _ok(sessions, name, n) for name in (A, B) for n in counts}
    loads = [s["loadavg"][0] for s in sessions]
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    failed = [s for s in sessions if s["error"] is not None]
    parts = [
        f"Command: `{info['command']}`  ",
        f"Machine: {info['nproc']} x {info['cpu']}, {info['memory_gib']} GiB, "
        f"Linux {info['kernel']}, Python {info['python']}  ",
        f"Versions: {versions}; agentvisor source {info.get('agentvisor_source', '?')}  ",
        f"Date: {info['date']}; {info['rounds']} rounds (A B A B), idle window "
        f"{info['idle_seconds']:g} s, {info['kills_per_session']} kills per session, "
        f"layout `{info['layout']}`, {info.get('wall_seconds', '?')} s in all; "
        f"1-min load average {min(loads):.1f} to {max(loads):.1f} during the run",
    ]
    if failed:
        parts.append(
            f"\n**{len(failed)} session(s) failed** and are left out: "
            + "; ".join(f"{s['supervisor']} N={s['workers']}: {s['error']}" for s in failed)
        )

    def start_stop(labels: dict[str, str]) -> str:
        """One row per N: each label's median for both, the ratio of the last label."""
        rows = []
        compared = list(labels)[-1]
        for n in counts:
            cells = [_s(median(_values(by[name, n], key))) for name in (A, B) for key in labels]
            paired = _paired_ratio(by[A, n], by[B, n], compared)
            met = None if paired is None else paired <= START_STOP_RATIO
            rows.append([str(n), *cells, _ratio(paired, 1.0), "≤ 0.25", _yes(met)])
        header = ["N", *(f"{name} {label}" for name in (A, B) for label in labels.values())]
        return _table([*header, "paired ratio", "goal", "met?"], rows)

    def replace(key: str) -> str:
        rows = []
        for n in counts:
            a, b = _pooled(by[A, n], key), _pooled(by[B, n], key)
            ma, mb = median(a), median(b)
            met = None if ma is None else ma <= PM2_REPLACE_SECONDS
            rows.append(
                [
                    str(n),
                    f"{_ms(ma)} ({_ms(p90(a))})",
                    f"{_ms(mb)} ({_ms(p90(b))})",
                    str(len(a)),
                    _ratio(ma, mb),
                    "≤ 13.5 ms",
                    _yes(met),
                ]
            )
        header = ["N", f"{A} median (p90)", f"{B} median (p90)", "kills", "ratio", "goal", "met?"]
        return _table(header, rows)

    def idle_cpu() -> str:
        rows = []
        for n in counts:
            a = median(_values(by[A, n], "idle_cpu_percent"))
            b = median(_values(by[B, n], "idle_cpu_percent"))
            met = None if a is None else a <= IDLE_CPU_PERCENT
            cells = [f"{v:.2f} %" if v is not None else "-" for v in (a, b)]
            rows.append([str(n), *cells, _ratio(a, b), "≤ 1 %", _yes(met)])
        return _table(["N", A, B, "ratio", "goal", "met?"], rows)

    def rss() -> str:
        rows = []
        for n in counts:
            cells = []
            ends = []
            growth = None
            for name in (A, B):
                group = by[name, n]
                start = median(_values(group, "rss_idle_start"))
                end = median(_values(group, "rss_idle_end"))
                last = median(_values(group, "rss_before_stop"))
                cells.append(f"{_mib(start)} → {_mib(end)} → {_mib(last)}")
                ends.append(end)
                if name == A:
                    growth = median(
                        [
                            s["rss_idle_end"] - s["rss_idle_start"]
                            for s in group
                            if s["rss_idle_end"]
                        ]
                    )
            a, b = ends
            met = None
            if a is not None and b is not None and growth is not None:
                met = a <= b + RSS_MARGIN_BYTES and growth <= FLAT_BYTES
            diff = "-" if a is None or b is None else f"{(a - b) / MiB:+.1f}"
            rows.append([str(n), *cells, diff, _ratio(a, b), "≤ supervisord + 40, flat", _yes(met)])
        header = ["N", f"{A} MiB", f"{B} MiB", "difference MiB", "ratio", "goal", "met?"]
        return _table(header, rows)

    sections: list[tuple[str, Callable[[], str], str]] = [
        (
            "Time to start all",
            lambda: start_stop(
                {"start_first": "first", "start_exist": "all exist", "start_running": "running"}
            ),
            "From launching the supervisor until the first worker exists (first), all N "
            "exist (all exist), and it also reports all N running (running, the figure "
            "compared). Medians of rounds; paired ratio: median of the per-round ratios.",
        ),
        (
            "Time to stop all",
            lambda: start_stop({"stop_workers": "workers gone", "stop": "exited"}),
            "From SIGTERM to the supervisor until every worker is gone (workers gone), and "
            "until the supervisor has exited too (exited, the figure compared).",
        ),
        (
            "Crash → replacement process exists",
            lambda: replace("replace_exist"),
            "From SIGKILL of one worker until its replacement has been exec'd. All kills "
            "of all rounds pooled.",
        ),
        (
            "Crash → replacement reported running",
            lambda: replace("replace_running"),
            "Until the supervisor's status shows that program running with the new pid.",
        ),
        (
            "Idle CPU of the supervisor process",
            idle_cpu,
            f"User + system CPU over the {info['idle_seconds']:g} s idle window after start, "
            "as % of one core (agentvisor samples its workers every 5 s, reading every "
            f"process of the machine: {_processes(sessions)} during the windows). One clock "
            f"tick (10 ms) is {1.0 / info['idle_seconds']:.2f} % here.",
        ),
        (
            "RSS of the supervisor process",
            rss,
            "Median RSS at the start of the idle window → its end → after the crash tests. "
            "Flat: at most 1 MiB growth over the idle window.",
        ),
    ]
    for title, table, note in sections:
        parts += ["", f"#### {title}", "", note, "", table()]
    return "\n".join(parts) + "\n"


def main(argv: Sequence[str]) -> int:
    with open(argv[0]) as f:
        data = json.load(f)
    print(render_report(data["machine"], data["sessions"]), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
