"""The config editor on a real file: serialized, validated, atomic, nothing lost."""

from __future__ import annotations

import os
import stat
import threading
import tomllib
from pathlib import Path

import pytest
import trio

from agentvisor.config import edit, persist
from agentvisor.config.load import load_config
from agentvisor.config.persist import ConfigEditor
from agentvisor.errors import ConfigInvalid, ConfigWriteFailed, ServiceNotFound

ENV = {"SECRET": "s3cret"}

SAMPLE = """\
# Written by hand; the editor keeps this.

[router]
bind = ["127.0.0.1:9090"]   # clients connect here

[agents.echo]
command = "python3 echo.py --port {port}"
environment = { TOKEN = "${SECRET}" }   # from the environment

[[routes]]
name = "all"
target_agents = ["echo"]
"""


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "agentvisor.toml"
    path.write_text(SAMPLE)
    return path


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name != "agentvisor.toml")


async def test_a_registration_is_written_and_its_config_returned(config_path: Path) -> None:
    config = await ConfigEditor(config_path, ENV).register_agent("weather", {"command": "w"})
    assert config_path.read_text() == edit.add_agent(SAMPLE, "weather", {"command": "w"})
    assert config == load_config(config_path, ENV)
    assert config.source == str(config_path)
    assert config.base_dir == str(config_path.parent)


async def test_every_edit_kind_lands_in_the_file(config_path: Path) -> None:
    editor = ConfigEditor(config_path, ENV)
    await editor.register_agent("b", {"command": "b"})
    await editor.update_agent("b", {"replicas": 2, "health": {"interval": 3}})
    await editor.create_route({"name": "to-b", "target_agents": ["b"], "priority": 5})
    await editor.update_route("to-b", {"priority": 6})
    await editor.delete_route("all")
    config = await editor.delete_agent("echo")
    assert config == load_config(config_path, ENV)
    assert list(config.agents) == ["b"]
    assert config.agents["b"].replicas == 2
    assert config.agents["b"].health.interval == 3
    assert [(r.name, r.priority) for r in config.routes] == [("to-b", 6)]
    assert config_path.read_text().startswith("# Written by hand; the editor keeps this.\n")


async def test_an_invalid_edit_leaves_the_file_as_it_was_and_lists_every_error(
    config_path: Path,
) -> None:
    before = config_path.stat()
    with pytest.raises(ConfigInvalid) as caught:
        await ConfigEditor(config_path, ENV).update_agent(
            "echo", {"replicas": "two", "stopsignal": "NOPE"}
        )
    assert [issue.path for issue in caught.value.issues] == [
        "agents.echo.replicas",
        "agents.echo.stopsignal",
    ]
    # issue 11: the new text was never written, so no line of the file is named
    assert (
        caught.value.details["errors"][0] == 'agents.echo.replicas: must be an integer, got "two"'
    )
    assert config_path.read_text() == SAMPLE
    assert config_path.stat().st_ino == before.st_ino  # not even replaced by a copy
    assert _leftovers(config_path.parent) == []


async def test_an_edit_the_config_refuses_raises_and_writes_nothing(config_path: Path) -> None:
    editor = ConfigEditor(config_path, ENV)
    with pytest.raises(ServiceNotFound):
        await editor.delete_agent("nope")
    with pytest.raises(ConfigInvalid, match="unknown agent"):
        await editor.delete_agent("echo")  # the route still targets it
    assert config_path.read_text() == SAMPLE


async def test_twenty_concurrent_registrations_all_land(config_path: Path) -> None:
    editor = ConfigEditor(config_path, ENV)
    async with trio.open_nursery() as nursery:
        for index in range(20):
            nursery.start_soon(editor.register_agent, f"agent-{index}", {"command": f"run {index}"})
    config = load_config(config_path, ENV)
    assert sorted(config.agents) == sorted(["echo", *(f"agent-{i}" for i in range(20))])
    assert config.agents["agent-7"].command == "run 7"


async def test_a_reader_never_sees_a_half_written_file(config_path: Path) -> None:
    editor = ConfigEditor(config_path, ENV)
    stop = threading.Event()
    counts: list[int] = []

    def read_until_stopped() -> None:
        while not stop.is_set():
            counts.append(len(tomllib.loads(config_path.read_text())["agents"]))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.to_thread.run_sync, read_until_stopped)
        for index in range(25):  # big values: a torn write would show
            await editor.register_agent(f"a{index}", {"command": "x" * 4000})
        stop.set()
    assert counts
    assert counts == sorted(counts)  # each read saw one whole version, in order
    assert len(tomllib.loads(config_path.read_text())["agents"]) == 26


async def test_the_files_mode_is_kept(config_path: Path) -> None:
    config_path.chmod(0o640)
    await ConfigEditor(config_path, ENV).update_agent("echo", {"replicas": 3})
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o640
    assert _leftovers(config_path.parent) == []


async def test_references_stay_references_after_edits(config_path: Path) -> None:
    editor = ConfigEditor(config_path, ENV)
    config = await editor.update_agent("echo", {"replicas": 2, "environment": {"MODE": "x"}})
    await editor.register_agent("other", {"command": "o", "description": "${SECRET}"})
    text = config_path.read_text()
    assert 'environment = { TOKEN = "${SECRET}", MODE = "x" }   # from the environment' in text
    assert 'description = "${SECRET}"' in text
    assert "s3cret" not in text
    assert config.agents["echo"].environment == {"TOKEN": "s3cret", "MODE": "x"}


async def test_a_symlinked_config_is_written_through_to_its_target(tmp_path: Path) -> None:
    target = tmp_path / "etc" / "agentvisor.toml"
    target.parent.mkdir()
    target.write_text(SAMPLE)
    link = tmp_path / "agentvisor.toml"
    link.symlink_to(target)
    await ConfigEditor(link, ENV).update_agent("echo", {"replicas": 2})
    assert link.is_symlink()
    assert "replicas = 2" in target.read_text()


async def test_a_file_changed_on_disk_meanwhile_is_edited_again_not_overwritten(
    config_path: Path,
) -> None:
    saved_by_operator = SAMPLE.replace("# Written by hand", "# Saved by the operator")

    def change(text: str) -> str:
        if "operator" not in text:  # the operator saves between our read and our write
            config_path.write_text(saved_by_operator)
        return edit.update_agent(text, "echo", {"replicas": 4})

    config = await ConfigEditor(config_path, ENV).edit(change)
    assert config_path.read_text() == edit.update_agent(saved_by_operator, "echo", {"replicas": 4})
    assert config.agents["echo"].replicas == 4


async def test_a_file_that_is_not_toml_is_reported_where_it_is_wrong(config_path: Path) -> None:
    config_path.write_text(SAMPLE + "oops = [\n")
    # issue 11: at the end of the last line, not on a line past the end of the file
    with pytest.raises(
        ConfigInvalid, match=r"agentvisor.toml:13:9: invalid TOML: .* end of the file"
    ):
        await ConfigEditor(config_path, ENV).update_agent("echo", {"replicas": 2})


# --- write failures ------------------------------------------------------------------


async def test_a_failed_rename_raises_config_write_failed_and_leaves_the_file(
    config_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_rename(source: str, destination: str) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(persist.os, "replace", no_rename)
    with pytest.raises(ConfigWriteFailed) as caught:
        await ConfigEditor(config_path, ENV).update_agent("echo", {"replicas": 2})
    assert caught.value.message == (
        f"cannot write the config file {config_path} (Read-only file system)"
    )
    assert config_path.read_text() == SAMPLE
    assert _leftovers(config_path.parent) == []  # the temp file is gone too


async def test_a_config_path_that_is_a_directory_raises_config_write_failed(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigWriteFailed, match="Is a directory") as caught:
        await ConfigEditor(tmp_path, ENV).register_agent("a", {"command": "a"})
    assert "\n" not in caught.value.message
    assert list(tmp_path.iterdir()) == []


async def test_a_config_in_a_missing_directory_raises_config_write_failed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "missing" / "agentvisor.toml"
    with pytest.raises(ConfigWriteFailed, match="No such file or directory"):
        await ConfigEditor(path, ENV).register_agent("a", {"command": "a"})
    assert not os.path.exists(path.parent)
