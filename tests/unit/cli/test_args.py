"""Command-line parsing and exit codes of agentvisor and agentvisorctl, without a server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agentvisor.cli import ctl, daemon


@pytest.fixture(autouse=True)
def no_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("AGENTVISOR_URL", raising=False)
    monkeypatch.delenv("AGENTVISOR_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["start"],
        ["tail"],
        ["tail", "x", "--instance", "one"],
        ["tail", "x", "--stderr", "--stdout"],
        ["status", "--bogus"],
    ],
)
def test_ctl_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        ctl.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: agentvisorctl" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("argv", [[], ["init", "a", "b"], ["bogus"], ["check", "--bogus"]])
def test_daemon_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        daemon.main(argv)
    assert exit_info.value.code == 2
    assert "usage: agentvisor" in capsys.readouterr().err


def test_all_mixed_with_names_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert ctl.main(["-s", "unused.sock", "start", "all", "x"]) == 2
    assert "'all' cannot be combined" in capsys.readouterr().err


def test_tail_line_count_is_bounded(capsys: pytest.CaptureFixture[str]) -> None:
    assert ctl.main(["-s", "unused.sock", "tail", "x", "-n", "0"]) == 2
    assert "-n must be from 1 to 1000" in capsys.readouterr().err


def test_missing_explicit_config_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert ctl.main(["-c", "nope.toml", "status"]) == 2
    assert capsys.readouterr().err == "agentvisorctl: config file nope.toml not found\n"


def test_unreachable_default_socket_exits_3_with_a_hint(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert ctl.main(["status"]) == 3
    assert capsys.readouterr().err == (
        "agentvisorctl: cannot reach agentvisor at .agentvisor/admin.sock "
        "(is it running? start it with 'agentvisor run')\n"
    )


def test_unreachable_url_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    # Port 1 on loopback: nothing listens there, the connection is refused at once.
    assert ctl.main(["-s", "http://127.0.0.1:1", "status"]) == 3
    assert "cannot reach agentvisor at http://127.0.0.1:1" in capsys.readouterr().err


def test_server_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AGENTVISOR_URL", "elsewhere.sock")
    assert ctl.main(["status"]) == 3
    assert "at elsewhere.sock" in capsys.readouterr().err


def test_socket_is_found_in_the_default_config(tmp_path: Path) -> None:
    (tmp_path / "agentvisor.toml.example").write_text(
        '[admin]\nbind = ["127.0.0.1:0", "unix:run/ctl.sock"]\n[supervisor]\nstate_dir = "st"\n'
    )
    assert ctl.default_config_path() == "agentvisor.toml.example"
    address = ctl.locate_admin(ctl.default_config_path())
    assert address.server == os.path.join("run", "ctl.sock")
    assert address.state_dir == str(tmp_path / "st")
    (tmp_path / "agentvisor.toml").write_text("")
    assert ctl.default_config_path() == "agentvisor.toml"


def test_tcp_only_config_gives_a_url_and_its_literal_token(tmp_path: Path) -> None:
    config = tmp_path / "sub" / "a.toml"
    config.parent.mkdir()
    config.write_text('[admin]\nbind = ["0.0.0.0:8088"]\ntoken = "s3cret"\n')
    address = ctl.locate_admin(str(config))
    assert (address.server, address.token) == ("http://127.0.0.1:8088", "s3cret")
    config.write_text('[admin]\nbind = ["127.0.0.1:8088"]\ntoken = "${ADMIN_TOKEN}"\n')
    assert ctl.locate_admin(str(config)).token is None


def test_unparsable_config_still_locates_the_default_socket(tmp_path: Path) -> None:
    config = tmp_path / "broken.toml"
    config.write_text("[admin\nbind = ")
    address = ctl.locate_admin(str(config))
    assert address.server == os.path.join(".agentvisor", "admin.sock")


def test_check_reports_every_issue_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "agentvisor.toml").write_text(
        "[agents.a]\ncommand = 'x'\nreplica = 2\nautorestart = 'sometimes'\n"
    )
    assert daemon.main(["check"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) >= 2
    assert all(line.startswith("agentvisor.toml:") for line in lines)
    assert any("agents.a.autorestart" in line for line in lines)


def test_check_of_a_valid_file_counts_agents_and_routes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "agentvisor.toml").write_text(
        "[agents.a]\ncommand = 'x'\n[agents.b]\ncommand = 'y'\n"
        "[[routes]]\nname = 'all'\ntarget_agents = ['a']\n"
    )
    assert daemon.main(["check"]) == 0
    assert capsys.readouterr().out == "agentvisor.toml: ok (2 agents, 1 route)\n"


def test_check_of_a_missing_file_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert daemon.main(["check", "-c", "missing.toml"]) == 1
    assert "missing.toml" in capsys.readouterr().out


def test_reload_without_a_daemon_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "agentvisor.toml").write_text('[admin]\nbind = ["unix:a.sock"]\n')
    assert daemon.main(["reload"]) == 3
    assert "cannot reach agentvisor at a.sock" in capsys.readouterr().err
