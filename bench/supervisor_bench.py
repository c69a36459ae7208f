"""agentvisor vs supervisord: start, stop, crash→replacement and idle overhead.

Run: ``.venv/bin/python bench/supervisor_bench.py [--workers 10,100,300]
[--rounds N] [--quick]`` (``make bench``). See bench/README.md.

How it measures. One *session* is one supervisor process supervising N copies
of ``bench/idle_worker.py``, from launch to exit; sessions never overlap. For
each round and each N, an agentvisor session runs, then a supervisord session
(A B A B …), so slow drift and other load on the machine fall on both alike.
Each session measures, in order:

1. start: from just before launching the supervisor until the first and then
   all N worker processes exist (children of the supervisor whose command line
   is the worker's, i.e. forked *and* exec'd; /proc scanned every 5 ms), and
   then until the supervisor's own status call reports all N running (polled
   every 10 ms once all exist);
2. idle: the supervisor process's own RSS (not its children's) at the start
   and end of an idle window, and its user+system CPU seconds over the window
   as a percentage of one core;
3. crash→replacement, several times: SIGKILL one worker (distinct random
   programs) at a random moment 0.1-1.1 s after the last status call, then the
   time until a new worker process exists (/proc scanned about every 1 ms),
   and until the supervisor reports that program running with a new pid
   (polled every 2 ms once it exists). Before each kill the session waits
   until all N run again and the dead worker has been reaped;
4. stop: from SIGTERM to the supervisor until every worker is gone (exited;
   a zombie counts as gone) and until the supervisor has exited too. The
   status connection is closed first: neither supervisor has a client attached.

agentvisor runs from a copy of its package taken when the bench starts, so
edits to a shared work tree during the run do not change what is measured.

Workers are found by scanning /proc rather than with ``psutil.Process.children``:
that call reads every process's stat file on each poll (several ms on a busy
machine), while the scan here reads only the entries it has not seen before.

Results: a table per metric (medians over rounds; latencies pooled over all
kills, median and p90; ratio = agentvisor / supervisord) on stdout, and the raw
samples as JSON plus the tables as Markdown under bench/results/.
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import importlib.util
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any

import attrs
import psutil
from report import render_report
from supervisors import LAYOUTS, Agentvisor, Contender, NotAnswering, Supervisord

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "idle_worker.py")
#: ``-S``: no site import; the worker needs only the stdlib, and starts faster.
WORKER_ARGV = (sys.executable, "-S", WORKER)

START_POLL_INTERVAL = 0.005
STATUS_POLL_INTERVAL = 0.010
KILL_POLL_INTERVAL = 0.001
KILL_STATUS_POLL_INTERVAL = 0.002
RSS_SAMPLE_INTERVAL = 1.0
#: A kill comes this long (uniformly random) after the last status call: at a
#: random phase of supervisord's 1 s loop, and not right after a request woke it.
KILL_GAP = (0.1, 1.1)
START_TIMEOUT = 120.0
STOP_TIMEOUT = 300.0  # supervisord stops 300 separate groups one by one
REPLACE_TIMEOUT = 15.0
SETTLE_TIMEOUT = 30.0
MiB = 1024 * 1024


class BenchError(Exception):
    """A session could not be measured: a timeout, or the supervisor exited."""


# Finding workers in /proc ----------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state first); None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return data[data.rindex(b")") + 2 :].decode().split()


def is_gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie waiting to be reaped counts as gone)."""
    fields = _stat_fields(pid)
    return fields is None or fields[0] in ("Z", "X")


class WorkerWatch:
    """The worker processes of one supervisor: its children running ``marker``.

    Each scan lists /proc and classifies only pids it has not seen before, plus
    children still between fork and exec; a worker stays a worker until its
    pid leaves /proc (so an unreaped zombie still counts). ``starttime`` (clock
    ticks since boot) is kept to recognise a pid again at cleanup.
    """

    def __init__(self, parent: int, marker: bytes) -> None:
        self.parent = parent
        self.marker = marker
        self._kind: dict[int, str] = {}  # pid -> "worker" | "pending" | "other"
        self.starttimes: dict[int, str] = {}

    def scan(self) -> set[int]:
        present = {int(name) for name in os.listdir("/proc") if name.isdigit()}
        for pid in self._kind.keys() - present:
            del self._kind[pid]
        for pid in present:
            if self._kind.get(pid, "pending") == "pending":
                self._kind[pid] = self._classify(pid)
        return {pid for pid, kind in self._kind.items() if kind == "worker"}

    def _classify(self, pid: int) -> str:
        fields = _stat_fields(pid)
        if fields is None or int(fields[1]) != self.parent:
            return "other"
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
        except (FileNotFoundError, ProcessLookupError):
            return "other"
        if self.marker not in cmdline:
            return "pending"  # forked, not exec'd yet
        self.starttimes[pid] = fields[19]
        return "worker"

    def kill_leftovers(self) -> list[int]:
        """SIGKILL workers of this session still alive (same pid *and* start time)."""
        killed = []
        for pid, starttime in self.starttimes.items():
            fields = _stat_fields(pid)
            if fields is not None and fields[19] == starttime and fields[0] not in "ZX":
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        return killed


# One session -----------------------------------------------------------------


@attrs.define
class Session:
    supervisor: str
    workers: int
    round: int
    start_first: float | None = None  # seconds
    start_exist: float | None = None
    start_running: float | None = None
    stop: float | None = None  # supervisor exited and workers gone
    stop_workers: float | None = None  # workers gone
    replace_exist: list[float] = attrs.field(factory=list)
    replace_running: list[float] = attrs.field(factory=list)
    idle_seconds: float | None = None
    idle_cpu_percent: float | None = None
    rss_idle_start: int | None = None  # bytes
    rss_idle_end: int | None = None
    rss_idle_max: int | None = None
    rss_before_stop: int | None = None
    loadavg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    processes: int = 0  # on the whole machine, at the start of the idle window
    error: str | None = None
    log_tail: str = ""
    notes: list[str] = attrs.field(factory=list)


def wait_for(
    condition: Callable[[], bool],
    interval: float,
    timeout: float,
    what: str,
    alive: Callable[[], None] | None = None,
) -> float:
    """Poll ``condition`` until true; the perf_counter time it was seen true."""
    deadline = time.perf_counter() + timeout
    while True:
        if condition():
            return time.perf_counter()
        if alive is not None:
            alive()
        if time.perf_counter() > deadline:
            raise BenchError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def all_running(contender: Contender, expected: int) -> bool:
    try:
        statuses = contender.statuses()
    except NotAnswering:
        return False
    running = [s for s, pid in statuses.values() if s == "running" and pid is not None]
    return len(statuses) == expected and len(running) == expected


class SessionRunner:
    """Runs one supervisor for one session and fills in a :class:`Session`."""

    def __init__(
        self, contender: Contender, session: Session, options: argparse.Namespace, workdir: str
    ) -> None:
        self.contender = contender
        self.session = session
        self.options = options
        self.rng = random.Random(f"{options.seed}:{session.round}:{session.workers}")
        self.log_path = os.path.join(workdir, "supervisor.out")
        self.popen: subprocess.Popen[bytes] | None = None
        self.watch: WorkerWatch | None = None

    def run(self) -> None:
        s = self.session
        s.loadavg = os.getloadavg()
        try:
            self._start()
            self._idle()
            self._crashes()
            assert self.popen is not None
            s.rss_before_stop = psutil.Process(self.popen.pid).memory_info().rss
            self._stop()
        except (BenchError, NotAnswering, psutil.Error) as error:
            s.error = f"{type(error).__name__}: {error}"
            s.log_tail = self._log_tail()
        finally:
            self._clean_up()

    def _alive(self) -> None:
        assert self.popen is not None
        if self.popen.poll() is not None:
            raise BenchError(f"{self.contender.name} exited with status {self.popen.returncode}")

    def _start(self) -> None:
        n = self.session.workers
        with open(self.log_path, "wb") as log:
            t0 = time.perf_counter()
            self.popen = subprocess.Popen(
                self.contender.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=self.contender.env,
            )
        watch = self.watch = WorkerWatch(self.popen.pid, WORKER.encode())
        first = wait_for(
            lambda: len(watch.scan()) >= 1,
            START_POLL_INTERVAL,
            START_TIMEOUT,
            "the first worker to exist",
            self._alive,
        )
        exist = wait_for(
            lambda: len(watch.scan()) >= n,
            START_POLL_INTERVAL,
            START_TIMEOUT,
            f"{n} workers to exist",
            self._alive,
        )
        running = wait_for(
            lambda: all_running(self.contender, n),
            STATUS_POLL_INTERVAL,
            START_TIMEOUT,
            f"{self.contender.name} to report {n} workers running",
            self._alive,
        )
        self.session.start_first = first - t0
        self.session.start_exist = exist - t0
        self.session.start_running = running - t0
        reported = {pid for _, pid in self.contender.statuses().values()}
        if reported != watch.scan():
            self.session.notes.append("after start, reported pids != worker processes found")

    def _idle(self) -> None:
        assert self.popen is not None
        proc = psutil.Process(self.popen.pid)
        self.session.processes = len(psutil.pids())  # agentvisor's sampler reads them all
        times = proc.cpu_times()
        cpu0, t0 = times.user + times.system, time.perf_counter()
        rss = [proc.memory_info().rss]
        end = t0 + self.options.idle
        while (now := time.perf_counter()) < end:
            time.sleep(min(RSS_SAMPLE_INTERVAL, end - now))
            rss.append(proc.memory_info().rss)
        times = proc.cpu_times()
        elapsed = time.perf_counter() - t0
        s = self.session
        s.idle_seconds = elapsed
        s.idle_cpu_percent = 100.0 * (times.user + times.system - cpu0) / elapsed
        s.rss_idle_start, s.rss_idle_end, s.rss_idle_max = rss[0], rss[-1], max(rss)

    def _settled(self) -> bool:
        """All N workers exist (dead ones reaped) and the supervisor says all run."""
        assert self.watch is not None
        n = self.session.workers
        return len(self.watch.scan()) == n and all_running(self.contender, n)

    def _crashes(self) -> None:
        assert self.watch is not None
        watch, contender = self.watch, self.contender
        kills = min(self.options.kills, self.session.workers)
        # Distinct programs: agentvisor backs off a second crash within stable_secs.
        for program in self.rng.sample(contender.programs, kills):
            wait_for(self._settled, STATUS_POLL_INTERVAL, SETTLE_TIMEOUT, "workers to settle")
            state, pid = contender.status(program)
            if state != "running" or pid is None:
                raise BenchError(f"{program} is {state} (pid {pid}) before the kill")
            time.sleep(self.rng.uniform(*KILL_GAP))
            self._alive()
            before = watch.scan()
            t0 = time.perf_counter()
            os.kill(pid, signal.SIGKILL)
            new: set[int] = set()

            def replaced(before: set[int] = before, new: set[int] = new) -> bool:
                new.update(watch.scan() - before)
                return bool(new)

            def reported(program: str = program, old: int = pid) -> bool:
                try:
                    state, pid = contender.status(program)
                except NotAnswering:
                    return False
                return state == "running" and pid not in (None, old)

            exist = wait_for(
                replaced, KILL_POLL_INTERVAL, REPLACE_TIMEOUT, "a replacement", self._alive
            )
            running = wait_for(
                reported,
                KILL_STATUS_POLL_INTERVAL,
                REPLACE_TIMEOUT,
                f"{program} reported running again",
                self._alive,
            )
            self.session.replace_exist.append(exist - t0)
            self.session.replace_running.append(running - t0)
            if contender.status(program)[1] not in new:
                self.session.notes.append(f"{program}: reported pid is not the new process")
        wait_for(self._settled, STATUS_POLL_INTERVAL, SETTLE_TIMEOUT, "workers to settle")

    def _stop(self) -> None:
        assert self.popen is not None
        assert self.watch is not None
        popen, left = self.popen, self.watch.scan()
        workers_gone: list[float] = []

        def stopped() -> bool:
            left.difference_update({pid for pid in left if is_gone(pid)})
            if not left and not workers_gone:
                workers_gone.append(time.perf_counter())
            return popen.poll() is not None and not left

        # An idle keep-alive connection to agentvisor's admin API holds its exit
        # for the HTTP server's graceful timeout (3 s): hang up first, on both.
        self.contender.close()
        t0 = time.perf_counter()
        popen.send_signal(signal.SIGTERM)
        done = wait_for(stopped, START_POLL_INTERVAL, STOP_TIMEOUT, "supervisor and workers")
        self.session.stop = done - t0
        self.session.stop_workers = workers_gone[0] - t0
        if popen.returncode != 0:
            self.session.notes.append(f"exit status {popen.returncode} after SIGTERM")

    def _clean_up(self) -> None:
        self.contender.close()
        if self.popen is not None and self.popen.poll() is None:
            self.session.notes.append("supervisor still running at cleanup: SIGKILL")
            self.popen.kill()
        if self.popen is not None:
            self.popen.wait(timeout=STOP_TIMEOUT)
        if self.watch is not None and (killed := self.watch.kill_leftovers()):
            self.session.notes.append(f"{len(killed)} workers left behind: SIGKILLed")

    def _log_tail(self, lines: int = 30) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""


def run_session(name: str, workers: int, round_: int, options: argparse.Namespace) -> Session:
    session = Session(name, workers, round_)
    workdir = tempfile.mkdtemp(prefix=f"avbench-{name[:2]}-")
    try:
        contender: Contender
        if name == "agentvisor":
            contender = Agentvisor(workdir, workers, WORKER_ARGV, options.layout, options.source)
        else:
            contender = Supervisord(workdir, workers, WORKER_ARGV, options.layout)
        SessionRunner(contender, session, options, workdir).run()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return session


# Running it all ----------------------------------------------------------------


def snapshot_agentvisor(dest: str) -> str:
    """Copy the agentvisor package as it is now into ``dest``, compiled; its digest.

    Every agentvisor session runs this copy, so edits to the work tree during
    a run (a shared checkout) cannot make sessions measure different code.
    """
    spec = importlib.util.find_spec("agentvisor")
    assert spec is not None
    assert spec.origin is not None
    package = os.path.join(dest, "agentvisor")
    shutil.copytree(
        os.path.dirname(spec.origin), package, ignore=shutil.ignore_patterns("__pycache__")
    )
    compileall.compile_dir(package, quiet=1)
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(package):
        dirs.sort()
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(root, name)
                digest.update(os.path.relpath(path, package).encode())
                with open(path, "rb") as f:
                    digest.update(f.read())
    return digest.hexdigest()[:12]


def git_state() -> str:
    """The checkout's commit, with "+ local changes" when the tree differs from it."""
    try:
        commit = subprocess.run(
            ["git", "-C", HERE, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", HERE, "status", "--porcelain", "--", "../agentvisor"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + (" + local changes" if dirty else "")


def machine() -> dict[str, Any]:
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": model,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": {p: version(p) for p in ("agentvisor", "trio", "supervisor", "psutil")},
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--workers", help="worker counts, comma-separated (default 10,100,300)")
    parser.add_argument("--rounds", type=int, help="sessions per supervisor and N (default 3)")
    parser.add_argument("--idle", type=float, help="idle window in seconds (default 30)")
    parser.add_argument("--kills", type=int, help="crashes per session (default 5)")
    parser.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="replicas",
        help="replicas (default): one agent with replicas = N and one program with "
        "numprocs = N; separate: N agents [agents.wI] and N programs [program:wI]",
    )
    parser.add_argument("--seed", default="agentvisor", help="seed for choosing whom to kill")
    parser.add_argument("--results", default=os.path.join(HERE, "results"), help="output dir")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 10,100 workers, 1 round, 3 s idle"
    )
    options = parser.parse_args(argv)
    quick = {"workers": "10,100", "rounds": 1, "idle": 3.0, "kills": 3}
    full = {"workers": "10,100,300", "rounds": 3, "idle": 30.0, "kills": 5}
    for key, value in (quick if options.quick else full).items():
        if getattr(options, key) is None:
            setattr(options, key, value)
    options.workers = [int(n) for n in options.workers.split(",")]
    if options.rounds < 1 or options.kills < 0 or options.idle <= 0:
        parser.error("--rounds >= 1, --kills >= 0 and --idle > 0, please")
    return options


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    socket.setdefaulttimeout(30.0)  # supervisord's XML-RPC transport sets none itself
    info = machine()
    info.update(
        rounds=options.rounds,
        workers=options.workers,
        idle_seconds=options.idle,
        kills_per_session=options.kills,
        layout=options.layout,
        command=" ".join([os.path.relpath(sys.executable), *sys.argv]),
    )
    sessions: list[Session] = []
    started = time.perf_counter()
    source = options.source = tempfile.mkdtemp(prefix="avbench-src-")
    try:
        info["agentvisor_source"] = f"{git_state()}, package digest {snapshot_agentvisor(source)}"
        for round_ in range(options.rounds):
            for workers in options.workers:
                for name in ("agentvisor", "supervisord"):
                    session = run_session(name, workers, round_, options)
                    sessions.append(session)
                    print(_one_line(session), flush=True)
    finally:
        shutil.rmtree(source, ignore_errors=True)
    info["wall_seconds"] = round(time.perf_counter() - started)
    report = render_report(info, [attrs.asdict(s) for s in sessions])
    print()
    print(report)
    os.makedirs(options.results, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = os.path.join(options.results, f"supervisor-{stamp}")
    with open(base + ".json", "w") as f:
        json.dump({"machine": info, "sessions": [attrs.asdict(s) for s in sessions]}, f, indent=1)
    with open(base + ".md", "w") as f:
        f.write(report)
    print(f"raw results: {base}.json")
    return 1 if any(s.error for s in sessions) else 0


def _one_line(s: Session) -> str:
    head = f"round {s.round} N={s.workers:<3} {s.supervisor:<11}"
    if s.error:
        return f"{head} FAILED: {s.error}\n{s.log_tail}"

    def ms(values: Sequence[float]) -> str:
        return "/".join(f"{v * 1000:.1f}" for v in values)

    line = (
        f"{head} start {s.start_first:.3f}s/{s.start_exist:.3f}s/{s.start_running:.3f}s"
        f"  stop {s.stop_workers:.3f}s/{s.stop:.3f}s  cpu {s.idle_cpu_percent:.2f}%"
        f"  rss {(s.rss_idle_start or 0) / MiB:.1f}->{(s.rss_idle_end or 0) / MiB:.1f}MiB"
        f" (max {(s.rss_idle_max or 0) / MiB:.1f})"
    )
    if s.replace_exist:
        line += f"  replace ms {ms(s.replace_exist)} (running {ms(s.replace_running)})"
    line += f"  load {s.loadavg[0]:.1f}"
    return line + (f"  notes: {'; '.join(s.notes)}" if s.notes else "")


if __name__ == "__main__":
    sys.exit(main())
