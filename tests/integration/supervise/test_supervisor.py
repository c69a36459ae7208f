"""The supervisor against real child processes (tests/children), real clock, deadlines."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import psutil
import pytest
import trio

from agentvisor.config.load import load_config
from agentvisor.errors import ConfigInvalid
from agentvisor.events import Event, EventBus, InstanceStateChanged, OperatorAction
from agentvisor.supervise.process import open_launcher
from agentvisor.supervise.registry import ServiceView
from agentvisor.supervise.supervisor import Supervisor
from tests.children import wait_gone

CHILDREN = Path(__file__).resolve().parents[2] / "children"
PY = sys.executable


def child(name: str, *args: str) -> str:
    """A TOML array for ``command`` running one of tests/children."""
    return json.dumps([PY, str(CHILDREN / name), *args])


def write_config(path: Path, agents: str, extra: str = "") -> Path:
    path.write_text(
        f"""
[supervisor]
state_dir = "state"
sample_interval = 0.2
port_range = [20000, 29999]

[admin]
bind = []

{extra}
{agents}
"""
    )
    return path


@asynccontextmanager
async def running(config_path: Path) -> AsyncIterator[Supervisor]:
    bus = EventBus()
    async with open_launcher() as launcher, trio.open_nursery() as nursery:
        supervisor = Supervisor(load_config(config_path), bus=bus, launcher=launcher)
        await nursery.start(supervisor.run)
        try:
            yield supervisor
        finally:
            with trio.move_on_after(10):
                await supervisor.shutdown()
            nursery.cancel_scope.cancel()


async def wait_for(supervisor: Supervisor, predicate: Callable[[], bool]) -> None:
    """Wait until ``predicate()`` holds, re-checking on every published event."""
    async with supervisor.bus.subscribe() as events:
        while not predicate():
            with trio.move_on_after(0.2):  # sampling updates views without events
                await events.receive()


async def wait_state(supervisor: Supervisor, name: str, state: str) -> ServiceView:
    await wait_for(supervisor, lambda: supervisor.service(name).state == state)
    return supervisor.service(name)


def pids(view: ServiceView) -> list[int | None]:
    return [instance.pid for instance in view.instances]


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def test_killed_worker_is_replaced_at_once(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "a.toml",
        f"[agents.sleepy]\ncommand = {child('sleeper.py')}\nstartsecs = 0.1\n"
        "health.enabled = false\n",
    )
    async with running(config) as supervisor:
        with trio.fail_after(10):
            view = await wait_state(supervisor, "sleepy", "running")
            (old_pid,) = pids(view)
            assert old_pid is not None
            os.kill(old_pid, signal.SIGKILL)
            await wait_for(
                supervisor,
                lambda: pids(supervisor.service("sleepy")) not in ([old_pid], [None]),
            )
        instance = supervisor.service("sleepy").instances[0]
        assert instance.restarts == 1
        assert instance.exit_code == -signal.SIGKILL


async def test_crash_loop_while_starting_ends_fatal(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "a.toml",
        f"[agents.crashy]\ncommand = {child('crasher.py', '--code', '3')}\n"
        "startsecs = 5\nstartretries = 2\nbackoff_initial = 0.01\nfatal_cooldown = 0\n"
        "health.enabled = false\n",
    )
    async with running(config) as supervisor:
        with trio.fail_after(10):
            view = await wait_state(supervisor, "crashy", "fatal")
    instance = view.instances[0]
    assert instance.failures == 3
    assert instance.exit_code == 3
    assert "gave up after 3 failures in a row" in instance.reason
    assert instance.next_retry_at is None


async def test_crash_loop_after_running_backs_off_and_ends_fatal(tmp_path: Path) -> None:
    # Each run passes startsecs (so the instance is "running"), then crashes well
    # before stable_secs: supervisord would restart this forever at full speed.
    config = write_config(
        tmp_path / "a.toml",
        f"[agents.flappy]\ncommand = {child('crasher.py', '--after', '0.3')}\n"
        "startsecs = 0.05\nstable_secs = 60\nstartretries = 3\nbackoff_initial = 0.05\n"
        "health.enabled = false\n",
    )
    states: list[str] = []
    async with running(config) as supervisor:
        async with supervisor.bus.subscribe(
            lambda e: isinstance(e, InstanceStateChanged)
        ) as events:
            with trio.fail_after(15):
                async for event in events:
                    assert isinstance(event, InstanceStateChanged)
                    states.append(event.new)
                    if event.new == "fatal":
                        break
        view = supervisor.service("flappy")
    assert states.count("running") == 4  # the first run and startretries restarts
    assert "backoff" in states
    assert view.instances[0].next_retry_at is not None  # fatal_cooldown retries it later


async def test_stop_kills_a_sigterm_ignoring_group_after_stopwaitsecs(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "a.toml",
        f"[agents.stubborn]\ncommand = {child('sigterm_ignorer.py')}\nstartsecs = 0\n"
        "stopwaitsecs = 0.5\nhealth.enabled = false\n",
    )
    async with running(config) as supervisor:
        with trio.fail_after(10):
            book = supervisor.logbook("stubborn")
            while not book.tail(1):
                await book.wait_beyond(book.last_seq)
            family = json.loads(book.tail(1)[0].text)
            await supervisor.stop("stubborn", source="test")
        assert supervisor.service("stubborn").state == "stopped"
        with trio.fail_after(5):
            while not (gone(family["pid"]) and gone(family["grandchild"])):
                await trio.sleep(0.01)


async def test_invalid_reload_keeps_the_old_config_running(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "a.toml",
        f"[agents.keep]\ncommand = {child('sleeper.py')}\nstartsecs = 0\nhealth.enabled = false\n",
    )
    async with running(config) as supervisor:
        with trio.fail_after(10):
            before = pids(await wait_state(supervisor, "keep", "running"))
        config.write_text(config.read_text() + "\n[agents.broken]\nreplicas = 'two'\n")
        with pytest.raises(ConfigInvalid) as caught:
            await supervisor.reload(source="test")
        messages = [str(issue) for issue in caught.value.issues]
        assert any("agents.broken.replicas" in m for m in messages)
        assert any("agents.broken" in m and "exactly one" in m for m in messages)
        assert pids(supervisor.service("keep")) == before
        assert [s.name for s in supervisor.services()] == ["keep"]


async def test_reload_restarts_only_the_changed_agent(tmp_path: Path) -> None:
    agents = "".join(
        f"[agents.{name}]\ncommand = {child('sleeper.py')}\nstartsecs = 0\n"
        f"health.enabled = false\nenvironment = {{ MARK = '{name}' }}\n"
        for name in ("one", "two", "three", "gone")
    )
    config = write_config(tmp_path / "a.toml", agents)
    async with running(config) as supervisor:
        with trio.fail_after(10):
            before = {
                name: pids(await wait_state(supervisor, name, "running"))
                for name in ("one", "two", "three", "gone")
            }
            edited = agents.replace("MARK = 'two'", "MARK = 'changed'")
            edited = edited.replace("[agents.gone]", "[agents.new]")
            write_config(config, edited.replace("[agents.one]\n", "[agents.one]\ntags = ['x']\n"))
            result = await supervisor.reload(source="test")
            assert result.plan.restart == ("two",)
            assert result.plan.added == ("new",)
            assert result.plan.removed == ("gone",)
            assert result.plan.live == ("one",)
            await wait_state(supervisor, "two", "running")
            await wait_state(supervisor, "new", "running")
        assert pids(supervisor.service("one")) == before["one"]
        assert pids(supervisor.service("three")) == before["three"]
        assert pids(supervisor.service("two")) != before["two"]
        assert supervisor.service("one").tags == ("x",)
        assert "gone" not in [s.name for s in supervisor.services()]
        (gone_pid,) = before["gone"]
        assert gone_pid is not None
        with trio.fail_after(10):  # its stop goes on in the background after the reload
            await wait_gone(gone_pid)


async def test_reload_scales_without_restarting_existing_replicas(tmp_path: Path) -> None:
    agent = (
        f"[agents.many]\ncommand = {child('sleeper.py')}\nstartsecs = 0\nhealth.enabled = false\n"
    )
    config = write_config(tmp_path / "a.toml", agent + "replicas = 2\n")
    async with running(config) as supervisor:
        with trio.fail_after(10):
            before = pids(await wait_state(supervisor, "many", "running"))
            write_config(config, agent + "replicas = 3\n")
            result = await supervisor.reload(source="test")
            assert result.plan.scaled == ("many",)
            view = await wait_state(supervisor, "many", "running")
        assert pids(view)[:2] == before
        assert len({i.port for i in view.instances}) == 3


async def test_depends_on_starts_the_dependency_first(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "a.toml",
        f"[agents.app]\ncommand = {child('sleeper.py')}\nstartsecs = 0\ndepends_on = ['db']\n"
        "health.enabled = false\n"
        f"[agents.db]\ncommand = {child('sleeper.py')}\nstartsecs = 0.5\n"
        "health.enabled = false\n",
    )
    order: list[tuple[str, str]] = []

    def record(event: Event) -> bool:
        return isinstance(event, InstanceStateChanged) and event.new in ("starting", "running")

    bus = EventBus()
    async with (
        bus.subscribe(record) as events,
        open_launcher() as launcher,
        trio.open_nursery() as nursery,
    ):
        supervisor = Supervisor(load_config(config), bus=bus, launcher=launcher)
        await nursery.start(supervisor.run)
        with trio.fail_after(10):
            async for event in events:
                assert isinstance(event, InstanceStateChanged)
                if (event.service, event.new) not in order:
                    order.append((event.service, event.new))
                if ("app", "running") in order:
                    break
        await supervisor.shutdown()
        nursery.cancel_scope.cancel()
    assert order.index(("db", "running")) < order.index(("app", "starting"))


async def test_health_check_gates_running_and_reports_health(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "a.toml",
        f"[agents.web]\ncommand = {child('ws_server.py', '--port', '{port}')}\nstartsecs = 0\n"
        "health.interval = 0.2\n"
        f"[agents.sick]\ncommand = {child('ws_server.py', '--port', '{port}', '--fail-health')}\n"
        "startsecs = 0\nstartretries = 0\nfatal_cooldown = 0\n"
        "health = { mode = 'http', interval = 0.1, timeout = 1, unhealthy_threshold = 2 }\n",
    )
    async with running(config) as supervisor:
        with trio.fail_after(15):
            web = await wait_state(supervisor, "web", "running")
            sick = await wait_state(supervisor, "sick", "fatal")
    assert web.instances[0].health.status == "healthy"
    assert web.instances[0].health.response_time is not None
    assert "no passing health check" in sick.instances[0].reason


async def test_memory_limit_restarts_the_instance_with_a_reason(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "a.toml",
        f"[agents.hog]\ncommand = {child('memory_hog.py', '--mb', '80')}\nstartsecs = 0\n"
        "max_memory_mb = 40\nhealth.enabled = false\n",
    )
    async with (
        running(config) as supervisor,
        supervisor.bus.subscribe(
            lambda e: isinstance(e, OperatorAction) and e.source == "memory"
        ) as events,
    ):
        with trio.fail_after(15):
            action = await events.receive()
    assert isinstance(action, OperatorAction)
    assert action.target == "hog"
    assert "above max_memory_mb 40" in action.message


async def test_worker_output_is_captured_in_ring_and_file(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "a.toml",
        f"[agents.talky]\ncommand = {child('crasher.py', '--after', '60')}\nstartsecs = 0\n"
        "health.enabled = false\n",
    )
    async with running(config) as supervisor:
        book = supervisor.logbook("talky")
        with trio.fail_after(10):
            while len(book.tail()) < 2:
                await book.wait_beyond(book.last_seq)
    streams = {line.stream: line.text for line in book.tail()}
    assert streams == {"stdout": "crasher: on stdout", "stderr": "crasher: on stderr"}
    logged = (tmp_path / "state" / "logs" / "talky.0.stderr.log").read_text()
    assert "crasher: on stderr" in logged


async def test_missing_program_goes_fatal_with_the_cause(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "a.toml",
        "[agents.typo]\ncommand = 'no-such-program-xyz --port {port}'\nstartretries = 1\n"
        "backoff_initial = 0.01\nfatal_cooldown = 0\nhealth.enabled = false\n",
    )
    async with running(config) as supervisor:
        with trio.fail_after(10):
            view = await wait_state(supervisor, "typo", "fatal")
    assert "no-such-program-xyz" in view.instances[0].reason


async def test_replicas_get_distinct_ports_substituted_in_command(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "a.toml",
        f"[agents.trio]\ncommand = {child('ws_server.py', '--port', '{port}')}\n"
        "replicas = 3\nstartsecs = 0\nhealth.interval = 0.2\n",
    )
    async with running(config) as supervisor:
        with trio.fail_after(15):
            view = await wait_state(supervisor, "trio", "running")
    ports = [instance.port for instance in view.instances]
    assert len(set(ports)) == 3
    assert all(port is not None and 20000 <= port <= 29999 for port in ports)


async def test_health_checks_turned_on_by_reload_start_without_a_restart(tmp_path: Path) -> None:
    agent = f"[agents.web]\ncommand = {child('ws_server.py', '--port', '{port}')}\nstartsecs = 0\n"
    config = write_config(tmp_path / "a.toml", agent + "health.enabled = false\n")
    async with running(config) as supervisor:
        with trio.fail_after(15):
            before = pids(await wait_state(supervisor, "web", "running"))
            assert supervisor.service("web").instances[0].health.status == "disabled"
            write_config(config, agent + "health = { enabled = true, interval = 0.1 }\n")
            result = await supervisor.reload(source="test")
            assert result.plan.live == ("web",)
            await wait_for(
                supervisor,
                lambda: supervisor.service("web").instances[0].health.status == "healthy",
            )
        assert pids(supervisor.service("web")) == before


async def test_an_agent_removed_from_the_config_leaves_no_files_behind(tmp_path: Path) -> None:
    # issue 11: its log files and session store stayed in state_dir for good.
    echo = Path(__file__).resolve().parents[3] / "examples" / "echo_agent.py"
    keep = (
        f"[agents.keep]\ncommand = {child('sleeper.py')}\nstartsecs = 0\nhealth.enabled = false\n"
    )
    gone = f'[agents.gone]\nagent = "{echo}"\n'
    config = write_config(tmp_path / "a.toml", keep + gone)
    state = tmp_path / "state"
    async with running(config) as supervisor:
        with trio.fail_after(20):
            await wait_state(supervisor, "gone", "running")
            await wait_state(supervisor, "keep", "running")
            assert (state / "sessions" / "gone.sqlite3").exists()
            assert (state / "logs" / "gone.0.stdout.log").exists()
            write_config(config, keep)
            await supervisor.reload(source="test")
            while (state / "sessions" / "gone.sqlite3").exists():  # removed after its stop
                await trio.sleep(0.05)
    assert [path.name for path in (state / "logs").iterdir()] == ["keep.0.stdout.log"]
    assert not list((state / "sessions").iterdir())
