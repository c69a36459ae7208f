"""Agent files load-checked in real subprocesses: every way a file fails, named with its line."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from agentvisor.config.load import load_config
from agentvisor.errors import ConfigInvalid
from agentvisor.supervise.agentfiles import check_agent_files
from tests.integration.supervise.test_supervisor import child, running, wait_state
from tests.integration.supervise.test_supervisor import write_config as supervised

REPO = Path(__file__).resolve().parents[3]
GOOD = (REPO / "examples" / "echo_agent.py").read_text()

BROKEN = {
    "missing.py": None,
    "syntax.py": "x = 1\ndef broken(:\n    pass\n",
    "nomodule.py": "import os\nimport no_such_module_here\n",
    "nofactory.py": "VALUE = 1\n",
    "raises.py": "x = 1\n\nraise RuntimeError('boom')\n",
    "exits.py": "import sys\nsys.exit(3)\n",
    "crashes.py": "import os\nos._exit(9)\n",
}


def _config(tmp_path: Path, files: dict[str, str | None]) -> Path:
    lines = []
    for index, (name, text) in enumerate(files.items()):
        if text is not None:
            (tmp_path / name).write_text(text)
        lines.append(f'[agents.a{index}]\nagent = "{name}"\n')
    config = tmp_path / "agentvisor.toml"
    config.write_text("\n".join(lines))
    return config


def test_a_good_agent_file_passes(tmp_path: Path) -> None:
    config = _config(tmp_path, {"good.py": GOOD})
    assert check_agent_files(load_config(config)) == []


def test_every_broken_file_is_one_issue_at_its_agent_key_naming_file_and_line(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path, {"good.py": GOOD, **BROKEN})
    issues = check_agent_files(load_config(config), shown_as="agentvisor.toml")
    by_key = {issue.path: issue for issue in issues}
    assert set(by_key) == {f"agents.a{i}.agent" for i in range(1, len(BROKEN) + 1)}
    text = {key: str(issue) for key, issue in by_key.items()}
    assert text["agents.a1.agent"] == (
        "agentvisor.toml:5:9 agents.a1.agent: missing.py: file not found"
    )
    assert "agents.a2.agent: syntax.py:2: SyntaxError: invalid syntax" in text["agents.a2.agent"]
    assert (
        "nomodule.py:2: ModuleNotFoundError: No module named 'no_such_module_here'"
        in (text["agents.a3.agent"])
    )
    assert "nofactory.py: defines neither create_agent() nor agent" in text["agents.a4.agent"]
    assert "raises.py:3: RuntimeError: boom" in text["agents.a5.agent"]
    assert "SystemExit" in text["agents.a6.agent"]
    assert "crashes.py: importing it failed" in text["agents.a7.agent"]
    for issue in issues:
        assert issue.file == "agentvisor.toml"
        assert issue.line > 0
        assert "\n" not in str(issue)


def test_an_import_that_hangs_is_ended_by_the_timeout(tmp_path: Path) -> None:
    config = _config(tmp_path, {"hangs.py": "import time\ntime.sleep(600)\n"})
    (issue,) = check_agent_files(load_config(config), timeout=1.0)
    assert issue.message == "hangs.py: importing it did not finish within 1s"


def test_the_file_imports_siblings_and_sees_the_agent_environment(tmp_path: Path) -> None:
    sibling = "helper"
    (tmp_path / f"{sibling}.py").write_text("import os\nNAME = os.environ['AGENT_NAME']\n")
    (tmp_path / "uses.py").write_text(GOOD + f"\nfrom {sibling} import NAME\n")
    (tmp_path / "agentvisor.toml").write_text(
        '[agents.x]\nagent = "uses.py"\nenvironment = { AGENT_NAME = "x" }\n'
    )
    assert check_agent_files(load_config(tmp_path / "agentvisor.toml")) == []


async def test_a_reload_checks_only_the_agent_files_it_would_start(tmp_path: Path) -> None:
    """An unchanged agent is not restarted by a reload, so its file is not imported again."""
    (tmp_path / "kept.py").write_text(GOOD)
    sleeper = f"command = {child('sleeper.py')}\nstartsecs = 0\nhealth.enabled = false\n"
    kept = '[agents.kept]\nagent = "kept.py"\nautostart = false\n'
    config = supervised(tmp_path / "a.toml", kept + f"[agents.other]\n{sleeper}")
    async with running(config) as supervisor:
        with trio.fail_after(10):
            await wait_state(supervisor, "other", "running")
        (tmp_path / "kept.py").write_text("def broken(:\n")  # not running: nothing to restart
        config.write_text(config.read_text() + "tags = ['edited']\n")
        result = await supervisor.reload(source="test")
        assert result.to_dict()["changed"] is True  # accepted: other's tags changed
        (tmp_path / "added.py").write_text("def broken(:\n")
        config.write_text(config.read_text() + '\n[agents.added]\nagent = "added.py"\n')
        with pytest.raises(ConfigInvalid) as caught:
            await supervisor.reload(source="test")
        assert [issue.path for issue in caught.value.issues] == ["agents.added.agent"]
