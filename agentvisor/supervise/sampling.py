"""CPU and memory of each instance's whole process tree, for metrics and max_memory_mb.

A pass reads only our trees: from each root down, a process's children are
listed in ``/proc/PID/task/TID/children`` (one file per thread: a child
belongs to the thread that forked it), and one read of ``/proc/PID/stat``
gives its parent, CPU times, start time and RSS. So the cost grows with our
processes, not with the host's: ``psutil.process_iter`` read every process on
the machine, several files each (31 ms of CPU per pass with ~400 processes,
half of agentvisor's idle CPU at 300 workers).

The children files need ``CONFIG_PROC_CHILDREN``, which some kernels leave
out. Without them a pass lists /proc once and reads every process's stat
file (one read each, not psutil's several), and finds each root's
descendants in the parent map built from that: O(host), but 1 file a process.

Descendants are found by parentage, not by process group, so a grandchild
that started its own session is counted too, as long as it has not been
reparented away (orphans adopted by init leave the tree). Processes that
vanish mid-pass are skipped, as are children whose pid was reused before
their stat was read (their parent is not the one that listed them).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Collection, Iterator

import attrs

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
_READ_BYTES = 65536  # a children file in one read: the kernel may skip children across reads


@attrs.frozen
class Sample:
    cpu_percent: float  # of one core, summed over the process tree (can exceed 100)
    rss_bytes: int  # summed over the tree (shared pages count once per process)
    processes: int


@attrs.frozen
class _Stat:
    """What one read of ``/proc/PID/stat`` says about a process."""

    ppid: int
    threads: int
    cpu_seconds: float  # user + system, its own and its reaped children's
    rss_bytes: int
    started: int  # clock ticks after boot: with the pid, it identifies the process


@attrs.frozen
class _Tree:
    root: _Stat
    cpu_seconds: float
    rss_bytes: int
    processes: int


class TreeSampler:
    """Samples process trees; remembers each root's CPU time between calls.

    Synchronous and blocking (it reads /proc): run it with
    ``trio.to_thread.run_sync``, one call at a time. ``now`` is a monotonic
    clock reading taken by the caller. ``proc`` is where procfs is mounted
    (tests point it at a made-up tree).
    """

    def __init__(self, proc: str = "/proc") -> None:
        self._proc = proc
        #: True: a pass reads our trees only; False: it scans all of ``proc``.
        self.walks_trees = os.path.exists(os.path.join(proc, "thread-self", "children"))
        # root pid -> (its start time, now, tree CPU seconds) at the previous sample
        self._previous: dict[int, tuple[int, float, float]] = {}

    def sample(self, root_pids: Collection[int], now: float) -> dict[int, Sample]:
        """A sample per root that still exists; roots that are gone are left out.

        CPU% is the tree's CPU time since this root's previous sample over the
        time elapsed; a root's first sample (or a pid reused by a new process)
        reads 0.0. The tree's CPU time includes reaped children's time
        (``cutime``/``cstime``), so short-lived helpers are counted and a
        child exiting does not make the total drop.
        """
        roots = set(root_pids)
        trees = self._walk(roots) if self.walks_trees else self._scan(roots)
        samples: dict[int, Sample] = {}
        previous, self._previous = self._previous, {}
        for root, tree in trees.items():
            cpu_percent = 0.0
            before = previous.get(root)
            if before is not None and before[0] == tree.root.started and now > before[1]:
                elapsed_cpu = max(0.0, tree.cpu_seconds - before[2])
                cpu_percent = 100.0 * elapsed_cpu / (now - before[1])
            self._previous[root] = (tree.root.started, now, tree.cpu_seconds)
            samples[root] = Sample(cpu_percent, tree.rss_bytes, tree.processes)
        return samples

    def _walk(self, roots: set[int]) -> dict[int, _Tree]:
        """Each root's tree, read downwards through the children files."""
        trees: dict[int, _Tree] = {}
        for root in roots:
            root_stat = self._stat(root)
            if root_stat is None:
                continue
            cpu_seconds, rss_bytes, processes = 0.0, 0, 0
            seen = {root}
            stack = [(root, root_stat)]
            while stack:
                pid, stat = stack.pop()
                cpu_seconds += stat.cpu_seconds
                rss_bytes += stat.rss_bytes
                processes += 1
                for child in self._children(pid, stat.threads):
                    if child in seen:
                        continue
                    seen.add(child)
                    child_stat = self._stat(child)
                    if child_stat is not None and child_stat.ppid == pid:
                        stack.append((child, child_stat))
            trees[root] = _Tree(root_stat, cpu_seconds, rss_bytes, processes)
        return trees

    def _children(self, pid: int, threads: int) -> Iterator[int]:
        """Children of every thread of ``pid``; none if it is gone."""
        task = f"{self._proc}/{pid}/task"
        if threads == 1:  # the common case: skip listing the task directory
            tids = [str(pid)]
        else:
            try:
                tids = os.listdir(task)
            except OSError:
                return
        for tid in tids:
            data = _read(f"{task}/{tid}/children")
            if data:
                yield from map(int, data.split())

    def _scan(self, roots: set[int]) -> dict[int, _Tree]:
        """Each root's tree, from one pass over every process in ``proc``."""
        stats: dict[int, _Stat] = {}
        for name in os.listdir(self._proc):
            if name.isdigit() and (stat := self._stat(int(name))) is not None:
                stats[int(name)] = stat
        children: defaultdict[int, list[int]] = defaultdict(list)
        for pid, stat in stats.items():
            if stat.ppid != pid:
                children[stat.ppid].append(pid)
        trees: dict[int, _Tree] = {}
        for root in roots:
            if root not in stats:
                continue
            cpu_seconds, rss_bytes, processes = 0.0, 0, 0
            seen = {root}
            stack = [root]
            while stack:
                pid = stack.pop()
                cpu_seconds += stats[pid].cpu_seconds
                rss_bytes += stats[pid].rss_bytes
                processes += 1
                for child in children.get(pid, ()):
                    if child not in seen:
                        seen.add(child)
                        stack.append(child)
            trees[root] = _Tree(stats[root], cpu_seconds, rss_bytes, processes)
        return trees

    def _stat(self, pid: int) -> _Stat | None:
        """Parse ``/proc/PID/stat``; None if the process is gone (or unreadable)."""
        data = _read(f"{self._proc}/{pid}/stat")
        if data is None:
            return None
        # The command name (field 2) is in parentheses and may contain anything,
        # ")" and spaces included: fields are counted from the last ")".
        fields = data[data.rfind(b")") + 2 :].split()
        try:
            return _Stat(
                ppid=int(fields[1]),
                threads=int(fields[17]),
                cpu_seconds=(int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14]))
                / _CLOCK_TICKS,
                rss_bytes=int(fields[21]) * _PAGE_BYTES,
                started=int(fields[19]),
            )
        except (IndexError, ValueError):
            return None


def _read(path: str) -> bytes | None:
    """One file of /proc in one read; None if it (or its process) is gone.

    A process can exit between open and read: the read then fails with ESRCH.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, _READ_BYTES)
    except OSError:
        return None
    finally:
        os.close(fd)
