"""The wheel carries the built web console: built, installed in a fresh venv, served.

`make test` builds the console before pytest, so the build hook (hatch_build.py)
finds it fresh and the wheel builds in seconds; a stale or missing console is
built by the hook itself (npm ci && npm run build), or the build says in one
line why it cannot be.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from tests.e2e.test_daemon import eventually, stop

REPO = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT = 600.0  # a stale console is rebuilt by the hook (npm ci + vite), ~1-2 min
pytestmark = pytest.mark.timeout(900)


def pip(python: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(python), "-m", "pip", *args],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
        env=env,
    )
    assert result.returncode == 0, f"pip {' '.join(args)} failed:\n{result.stdout}{result.stderr}"
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    log = pip(Path(sys.executable), "wheel", str(REPO), "--no-deps", "-v", "-w", str(out))
    assert "Web console:" in log  # the hook ran: "is up to date", or "building it"
    (built,) = out.glob("agentvisor-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel and its dependencies, nothing of the source tree."""
    root = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=True).create(root)
    python = root / "bin" / "python"
    pip(python, "install", "-q", str(wheel))
    return root


def fresh_env(installed: Path) -> dict[str, str]:
    """The environment of an operator who installed the wheel: its venv first on PATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = f"{installed / 'bin'}:/usr/local/bin:/usr/bin:/bin"
    return env


@contextlib.contextmanager
def running(installed: Path, folder: Path, *args: str) -> Iterator[re.Match[str]]:
    """`agentvisor run ARGS` from the fresh venv in ``folder``; the match of its ready line."""
    log = folder / "agentvisor.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [str(installed / "bin" / "agentvisor"), "run", *args],
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=folder,
            env=fresh_env(installed),
        )
    try:
        yield eventually(
            lambda: (
                process.poll() is None
                and re.search(r"router on (\S+); admin API on (\S+)", log.read_text())
            ),
            f"agentvisor's ready line in {log}",
        )
    finally:
        stop(process, timeout=20)


@pytest.fixture
def served(installed: Path, tmp_path: Path) -> Iterator[str]:
    """`agentvisor run` from the fresh venv, run from a directory away from the source tree."""
    config = tmp_path / "agentvisor.toml"
    config.write_text(
        '[supervisor]\nstate_dir = "state"\nport_range = [30000, 39999]\n\n'
        '[admin]\nbind = ["127.0.0.1:0"]\n\n[router]\nbind = ["127.0.0.1:0"]\n'
    )
    with running(installed, tmp_path, "-c", str(config)) as ready:
        yield ready.group(2).rstrip(",")


def test_the_wheel_carries_the_built_console(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "agentvisor/admin/static/index.html" in names
    assert any(re.fullmatch(r"agentvisor/admin/static/assets/index-[\w-]+\.js", n) for n in names)
    assert not any(n.startswith("web-console/") for n in names)


def test_an_installed_wheel_serves_the_console_with_long_cached_assets(
    installed: Path, served: str
) -> None:
    where = subprocess.run(
        [str(installed / "bin" / "python"), "-c", "import agentvisor; print(agentvisor.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=installed,
    ).stdout
    assert where.startswith(str(installed))  # the wheel's copy, not the source tree
    with httpx.Client(base_url=served, timeout=10) as client:
        home = client.get("/")
        assert home.status_code == 200
        assert '<div id="app">' in home.text
        assert home.headers["cache-control"] == "no-cache"
        assert "script-src 'self'" in home.headers["content-security-policy"]
        asset = re.search(r"/assets/index-[\w-]+\.js", home.text)
        assert asset, home.text
        script = client.get(asset.group(0))
        assert script.status_code == 200
        assert "javascript" in script.headers["content-type"]
        assert script.headers["cache-control"] == "public, max-age=31536000, immutable"
        deep = client.get("/services/weather/logs")
        assert deep.status_code == 200
        assert deep.text == home.text  # the SPA's index.html for a deep link
        assert client.get("/api/v1/nothing").status_code == 404


def test_init_then_run_serves_the_example_agent_with_no_repository(
    installed: Path, tmp_path: Path
) -> None:
    """`pip install agentvisor && agentvisor init && agentvisor run`, then a client's turn."""
    folder = tmp_path / "project"
    folder.mkdir()
    init = subprocess.run(
        [str(installed / "bin" / "agentvisor"), "init"],
        capture_output=True,
        text=True,
        cwd=folder,
        env=fresh_env(installed),
        timeout=60,
        check=False,
    )
    assert init.returncode == 0, init.stderr
    assert init.stdout.splitlines()[:2] == ["wrote agentvisor.toml", "wrote agents/assistant.py"]
    # The one change to what init wrote: this machine is shared, so no fixed 8080 / 9090.
    config = folder / "agentvisor.toml"
    text = config.read_text()
    assert text.count('"127.0.0.1:8080"') == 1
    assert text.count('"127.0.0.1:9090"') == 1
    config.write_text(text.replace(":8080", ":0").replace(":9090", ":0"))
    with running(installed, folder) as ready:  # no -c: ./agentvisor.toml, as an operator runs it
        router = ready.group(1).rstrip(";")

        def both_running() -> bool:
            status = subprocess.run(
                [str(installed / "bin" / "agentvisorctl"), "--json", "status", "assistant"],
                capture_output=True,
                text=True,
                cwd=folder,
                env=fresh_env(installed),
                timeout=20,
                check=False,
            )
            if status.returncode not in (0, 3) or not status.stdout.strip():
                return False
            (service,) = json.loads(status.stdout)
            return bool(service["state"] == "running" and service["replicas"]["running"] == 2)

        eventually(both_running, "both replicas of the example agent running", timeout=60)
        with connect(f"{router}/ws?service=assistant", open_timeout=10) as ws:
            ws.send(json.dumps({"event": "user.message", "content": "count: hello big world"}))
            events = []
            while not events or events[-1]["event"] not in ("agent.final_answer", "agent.error"):
                events.append(json.loads(ws.recv(timeout=20)))
    kinds = [event["event"] for event in events]
    assert kinds[0] == "connection_routed", events  # the router's notice, then the agent's
    assert "agent.session_created" in kinds, events
    result = next(event for event in events if event["event"] == "agent.tool_result")
    assert result["tool"] == "count_words"
    assert result["output"] == "3 words, 15 characters"
    assert kinds[-1] == "agent.final_answer", events
    assert "[offline model]" in events[-1]["content"]


def _source_copy(tmp_path: Path, *, built: bool) -> Path:
    """The files a wheel build reads, with or without the built console."""
    tree = tmp_path / "tree"
    tree.mkdir()
    for name in ("pyproject.toml", "README.md", "hatch_build.py"):
        shutil.copy2(REPO / name, tree / name)
    ignore = shutil.ignore_patterns("__pycache__", *([] if built else ["static"]))
    shutil.copytree(REPO / "agentvisor", tree / "agentvisor", ignore=ignore)
    (tree / "web-console" / "src").mkdir(parents=True)
    shutil.copy2(REPO / "web-console" / "package.json", tree / "web-console" / "package.json")
    return tree


@pytest.mark.parametrize("built", [False, True], ids=["missing", "stale"])
def test_without_npm_a_console_to_build_stops_the_build_in_one_line(
    tmp_path: Path, built: bool
) -> None:
    tree = _source_copy(tmp_path, built=built)
    if built:  # a source edited after the build
        (tree / "web-console" / "src" / "main.ts").write_text("// edited\n")
        index = tree / "agentvisor" / "admin" / "static" / "index.html"
        os.utime(index, (index.stat().st_mtime - 60, index.stat().st_mtime - 60))
    empty = tmp_path / "no-npm"
    empty.mkdir()
    env = {**os.environ, "PATH": str(empty)}  # pip runs by its full path; npm is not found
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(tree), "--no-deps", "-w", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
        env=env,
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    lines = [x.strip() for x in output.splitlines()]
    line = next(x for x in lines if x.startswith("agentvisor build:"))
    assert "npm is not on PATH" in line
    assert "missing or older than web-console/" in line
    assert not list(tmp_path.glob("*.whl"))
