"""CPU and memory of each instance's whole process tree, for metrics and max_memory_mb.

One sample is one pass over the process table (``psutil.process_iter``, two
small /proc reads per process) whatever the number of instances: the parent
map built from that pass finds every root's descendants. Asking psutil for
``Process.children()`` per root would scan all of /proc once per instance,
300 scans per round with 300 workers.

Descendants are found by parentage, not by process group, so a grandchild
that started its own session is counted too, as long as it has not been
reparented away (orphans adopted by init leave the tree).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection

import attrs
import psutil

_ATTRS = ["pid", "ppid", "cpu_times", "memory_info", "create_time"]


@attrs.frozen
class Sample:
    cpu_percent: float  # of one core, summed over the process tree (can exceed 100)
    rss_bytes: int  # summed over the tree (shared pages count once per process)
    processes: int


@attrs.frozen
class _Stat:
    ppid: int | None
    cpu_seconds: float
    rss_bytes: int
    create_time: float | None


class TreeSampler:
    """Samples process trees; remembers each root's CPU time between calls.

    Synchronous and blocking (it reads /proc): run it with
    ``trio.to_thread.run_sync``, one call at a time. ``now`` is a monotonic
    clock reading taken by the caller.
    """

    def __init__(self) -> None:
        # root pid -> (its create_time, now, tree CPU seconds) at the previous sample
        self._previous: dict[int, tuple[float | None, float, float]] = {}

    def sample(self, root_pids: Collection[int], now: float) -> dict[int, Sample]:
        """A sample per root that still exists; roots that are gone are left out.

        CPU% is the tree's CPU time since this root's previous sample over the
        time elapsed; a root's first sample (or a pid reused by a new process)
        reads 0.0. The tree's CPU time includes reaped children's time
        (``children_user``/``children_system``), so short-lived helpers are
        counted and a child exiting does not make the total drop.
        """
        stats = _scan()
        children: defaultdict[int, list[int]] = defaultdict(list)
        for pid, stat in stats.items():
            if stat.ppid is not None and stat.ppid != pid:
                children[stat.ppid].append(pid)
        samples: dict[int, Sample] = {}
        previous, self._previous = self._previous, {}
        for root in set(root_pids):
            root_stat = stats.get(root)
            if root_stat is None:
                continue
            cpu_seconds, rss_bytes, processes = _sum_tree(root, stats, children)
            cpu_percent = 0.0
            before = previous.get(root)
            if before is not None and before[0] == root_stat.create_time and now > before[1]:
                elapsed_cpu = max(0.0, cpu_seconds - before[2])
                cpu_percent = 100.0 * elapsed_cpu / (now - before[1])
            self._previous[root] = (root_stat.create_time, now, cpu_seconds)
            samples[root] = Sample(cpu_percent, rss_bytes, processes)
        return samples


def _scan() -> dict[int, _Stat]:
    """One pass over the process table; processes that vanish mid-scan are skipped.

    With ``attrs``, psutil reports a field it may not read (AccessDenied,
    ZombieProcess) as None instead of raising, and skips vanished processes.
    """
    stats: dict[int, _Stat] = {}
    for proc in psutil.process_iter(_ATTRS):
        try:
            info = proc.info
        except AttributeError:  # pragma: no cover - process_iter sets it
            continue
        times = info.get("cpu_times")
        memory = info.get("memory_info")
        cpu_seconds = 0.0
        if times is not None:
            cpu_seconds = (
                times.user
                + times.system
                + getattr(times, "children_user", 0.0)
                + getattr(times, "children_system", 0.0)
            )
        stats[info["pid"]] = _Stat(
            ppid=info.get("ppid"),
            cpu_seconds=cpu_seconds,
            rss_bytes=memory.rss if memory is not None else 0,
            create_time=info.get("create_time"),
        )
    return stats


def _sum_tree(
    root: int, stats: dict[int, _Stat], children: dict[int, list[int]]
) -> tuple[float, int, int]:
    """CPU seconds, RSS and process count of ``root`` and all its descendants."""
    cpu_seconds = 0.0
    rss_bytes = 0
    processes = 0
    seen = {root}
    stack = [root]
    while stack:
        pid = stack.pop()
        stat = stats[pid]
        cpu_seconds += stat.cpu_seconds
        rss_bytes += stat.rss_bytes
        processes += 1
        for child in children.get(pid, ()):
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return cpu_seconds, rss_bytes, processes
