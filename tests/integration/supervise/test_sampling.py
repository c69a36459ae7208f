"""TreeSampler against real process trees."""

from __future__ import annotations

import time
from collections.abc import Collection, Iterator
from typing import Any

import psutil
import pytest
import trio

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
    scans = 0
    real_process_iter = psutil.process_iter

    def counting_process_iter(*args: Any, **kwargs: Any) -> Iterator[psutil.Process]:
        nonlocal scans
        scans += 1
        return real_process_iter(*args, **kwargs)

    monkeypatch.setattr(psutil, "process_iter", counting_process_iter)
    roots = [proc.pid for proc in real_process_iter()][:300]
    started = time.perf_counter()
    samples = TreeSampler().sample(roots, time.monotonic())
    elapsed = time.perf_counter() - started
    assert scans == 1
    assert samples
    assert elapsed < 2.0, f"one sample took {elapsed:.2f}s"


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
