"""TreeSampler against real process trees."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Collection
from pathlib import Path

import psutil
import pytest
import trio

from agentvisor.supervise import sampling
from agentvisor.supervise.process import LaunchSpec, open_launcher
from agentvisor.supervise.sampling import Sample, TreeSampler
from tests.children import LineReader, child_argv, child_spec, running

DEADLINE = 10
MiB = 1024 * 1024


async def sample(sampler: TreeSampler, roots: Collection[int]) -> dict[int, Sample]:
    return await trio.to_thread.run_sync(sampler.sample, roots, time.monotonic())


async def test_a_memory_hog_shows_its_rss() -> None:
    async with (
        open_launcher() as launcher,
        running(launcher, child_spec("memory_hog.py", "--mb", "50")) as hog,
    ):
        with trio.fail_after(DEADLINE):
            assert await LineReader(hog.stdout).line() == "allocated"
        samples = await sample(TreeSampler(), [hog.pid])
    assert samples[hog.pid].rss_bytes >= 50 * MiB
    assert samples[hog.pid].processes == 1
    assert samples[hog.pid].cpu_percent == 0.0  # first sample of a root


async def test_a_busy_child_shows_cpu_on_a_later_sample() -> None:
    sampler = TreeSampler()
    async with open_launcher() as launcher, running(launcher, child_spec("busy.py")) as busy:
        with trio.fail_after(DEADLINE):
            assert await LineReader(busy.stdout).line() == "spinning"
            assert (await sample(sampler, [busy.pid]))[busy.pid].cpu_percent == 0.0
            while True:  # a measurement needs an interval: sample until it shows
                await trio.sleep(0.2)
                if (await sample(sampler, [busy.pid]))[busy.pid].cpu_percent > 50:
                    break


async def test_a_grandchild_in_another_session_is_counted() -> None:
    hog = child_argv("memory_hog.py", "--mb", "50")
    spec = child_spec("spawner.py", "--new-session", "--", *hog)
    async with open_launcher() as launcher, running(launcher, spec) as root:
        reader = LineReader(root.stdout)
        with trio.fail_after(DEADLINE):
            pids = await reader.json()
            assert await reader.line() == "allocated"  # the grandchild shares our stdout
        try:
            assert psutil.Process(pids["grandchild"]).ppid() == root.pid
            samples = await sample(TreeSampler(), [root.pid])
        finally:
            psutil.Process(pids["grandchild"]).kill()  # not in our group: kill it by pid
    assert samples[root.pid].processes == 2
    assert samples[root.pid].rss_bytes >= 50 * MiB


async def test_roots_that_are_gone_are_left_out() -> None:
    sampler = TreeSampler()
    async with open_launcher() as launcher, running(launcher, child_spec("sleeper.py")) as alive:
        done = await launcher.spawn(LaunchSpec(child_argv("crasher.py", "--code", "0"), {}, "/"))
        with trio.fail_after(DEADLINE):
            await done.wait()
        done.close()
        samples = await sample(sampler, [alive.pid, done.pid])
    assert set(samples) == {alive.pid}


async def test_processes_vanishing_mid_scan_do_not_raise() -> None:
    # A shell that forks short-lived processes without pause: some of them
    # appear in the pid listing and are gone before their /proc files are read.
    churn = LaunchSpec(("sh", "-c", "while :; do /bin/true; done"), {}, "/")
    sampler = TreeSampler()
    async with open_launcher() as launcher, running(launcher, churn) as shell:
        for _ in range(20):
            samples = await sample(sampler, [shell.pid])
            assert samples[shell.pid].processes in (1, 2)


def test_one_scan_of_the_process_table_for_many_roots(monkeypatch: pytest.MonkeyPatch) -> None:
    # The fallback for kernels without children files: one listing of /proc
    # per pass whatever the number of roots, and one file read per process.
    scans = 0
    real_listdir = os.listdir

    def counting_listdir(path: str) -> list[str]:
        nonlocal scans
        scans += path == "/proc"
        return real_listdir(path)

    sampler = TreeSampler()
    sampler.walks_trees = False
    roots = [int(name) for name in real_listdir("/proc") if name.isdigit()][:300]
    monkeypatch.setattr(os, "listdir", counting_listdir)
    started = time.perf_counter()
    samples = sampler.sample(roots, time.monotonic())
    elapsed = time.perf_counter() - started
    assert scans == 1
    assert samples
    assert elapsed < 2.0, f"one sample took {elapsed:.2f}s"


def test_the_tree_walk_is_used_where_the_kernel_lists_children() -> None:
    children = f"/proc/{os.getpid()}/task/{threading.get_native_id()}/children"
    assert TreeSampler().walks_trees == os.path.exists(children)


async def settled(procs: list[psutil.Process]) -> None:
    """Until every process sleeps and their memory holds still for a moment."""
    last = -1
    while True:
        rss = sum(proc.memory_info().rss for proc in procs)
        if rss == last and all(proc.status() == psutil.STATUS_SLEEPING for proc in procs):
            return
        last = rss
        await trio.sleep(0.05)


async def test_a_real_tree_reads_as_psutil_sees_it() -> None:
    spec = child_spec("spawner.py")  # a grandchild sleeping in the child's group
    async with open_launcher() as launcher, running(launcher, spec) as root:
        with trio.fail_after(DEADLINE):
            pids = await LineReader(root.stdout).json()
        procs = [psutil.Process(root.pid), psutil.Process(pids["grandchild"])]
        with trio.fail_after(DEADLINE):  # the grandchild is still starting its interpreter
            await settled(procs)
        samples = await sample(TreeSampler(), [root.pid])
        expected_rss = sum(proc.memory_info().rss for proc in procs)
    assert samples[root.pid].processes == 2
    assert abs(samples[root.pid].rss_bytes - expected_rss) < MiB  # both sleep: nothing moves


def test_cpu_is_measured_against_the_same_root_only() -> None:
    sampler = TreeSampler()
    me = psutil.Process().pid
    assert sampler.sample([me], 100.0)[me].cpu_percent == 0.0
    sampler.sample([], 101.0)  # forgets `me`
    assert sampler.sample([me], 102.0)[me].cpu_percent == 0.0
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:  # burn 0.2 s of CPU in this process
        pass
    assert sampler.sample([me], 103.0)[me].cpu_percent >= 15.0  # ≥ 0.2 s over 1 s


# A made-up procfs, to run the tree walk (and compare it with the scan) on any
# kernel: the children files need CONFIG_PROC_CHILDREN, which not every
# kernel has.

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def stat_line(pid: int, ppid: int, *, threads: int, cpu_ticks: int, rss_pages: int) -> str:
    """A /proc/PID/stat line; the name has a ")" and spaces, as real ones may."""
    fields = ["0"] * 50  # from field 3 (state) on
    fields[0], fields[1] = "S", str(ppid)
    fields[11], fields[12] = str(cpu_ticks), str(cpu_ticks)  # utime, stime
    fields[13] = str(cpu_ticks)  # cutime: reaped children count too
    fields[17], fields[19], fields[21] = str(threads), str(1000 + pid), str(rss_pages)
    return f"{pid} (w) x {pid}) {' '.join(fields)}\n"


def make_proc(root: Path, tree: dict[int, tuple[int, dict[int, list[int]]]], *, walk: bool) -> str:
    """``tree``: pid → (ppid, {thread id: children it forked}); stat, task/*/children."""
    for pid, (ppid, threads) in tree.items():
        (root / str(pid)).mkdir(parents=True)
        line = stat_line(pid, ppid, threads=len(threads), cpu_ticks=pid, rss_pages=pid)
        (root / str(pid) / "stat").write_text(line)
        for tid, children in threads.items():
            task = root / str(pid) / "task" / str(tid)
            task.mkdir(parents=True)
            if walk:
                (task / "children").write_text("".join(f"{child} " for child in children))
    if walk:
        (root / "thread-self").mkdir()
        (root / "thread-self" / "children").write_text("")
    return str(root)


#: 100 forked 200 and 300 from two threads; 200 forked 400. 500 and its child
#: 600 are someone else's. 100 also lists 700, a pid reused by a process whose
#: parent is 1 by the time its stat is read.
TREE: dict[int, tuple[int, dict[int, list[int]]]] = {
    100: (1, {100: [200], 101: [300, 700]}),
    200: (100, {200: [400]}),
    300: (100, {300: []}),
    400: (200, {400: []}),
    500: (1, {500: [600]}),
    600: (500, {600: []}),
    700: (1, {700: []}),
}


def test_the_walk_sums_a_tree_forked_from_several_threads(tmp_path: Path) -> None:
    sampler = TreeSampler(make_proc(tmp_path, TREE, walk=True))
    assert sampler.walks_trees
    first = sampler.sample([100, 200, 999], 10.0)
    assert first == {
        100: Sample(0.0, (100 + 200 + 300 + 400) * PAGE, 4),
        200: Sample(0.0, (200 + 400) * PAGE, 2),
    }
    later = sampler.sample([100], 12.0)  # same ticks: no CPU time spent since
    assert later[100].cpu_percent == 0.0


def test_the_walk_and_the_scan_agree(tmp_path: Path) -> None:
    walk = TreeSampler(make_proc(tmp_path / "walk", TREE, walk=True))
    scan = TreeSampler(make_proc(tmp_path / "scan", TREE, walk=False))
    assert not scan.walks_trees
    roots = [100, 200, 500, 700, 999]
    assert walk.sample(roots, 1.0) == scan.sample(roots, 1.0)
    for proc in (tmp_path / "walk", tmp_path / "scan"):  # 400 spends 3 s of CPU
        line = stat_line(400, 200, threads=1, cpu_ticks=400 + TICKS, rss_pages=400)
        (proc / "400" / "stat").write_text(line)
    samples = walk.sample(roots, 3.0)
    assert samples == scan.sample(roots, 3.0)
    assert samples[100].cpu_percent == pytest.approx(150.0)


def test_the_walk_reads_nothing_outside_our_trees(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sampler = TreeSampler(make_proc(tmp_path, TREE, walk=True))
    read: list[str] = []
    real_read = sampling._read

    def recording_read(path: str) -> bytes | None:
        read.append(path)
        return real_read(path)

    monkeypatch.setattr(sampling, "_read", recording_read)
    sampler.sample([100], 1.0)
    pids = {int(Path(path).relative_to(tmp_path).parts[0]) for path in read}
    assert pids == {100, 200, 300, 400, 700}  # 700 read, found reused, not counted
