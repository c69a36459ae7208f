"""The pidfile lock between real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agentvisor.errors import AlreadyRunning
from agentvisor.pidfile import open_pidfile, read_pid

SECOND_OPEN = textwrap.dedent(
    """
    import sys
    from agentvisor.errors import AlreadyRunning
    from agentvisor.pidfile import open_pidfile
    try:
        with open_pidfile(sys.argv[1]):
            print("acquired")
    except AlreadyRunning as error:
        print(error.message)
        sys.exit(7)
    """
)


def open_in_subprocess(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SECOND_OPEN, str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=Path(__file__).resolve().parents[3],
    )


def test_pidfile_holds_our_pid_and_is_removed_on_exit(tmp_path: Path) -> None:
    path = tmp_path / "state" / "agentvisor.pid"
    with open_pidfile(str(path)) as pid:
        assert pid == os.getpid()
        assert read_pid(str(path)) == os.getpid()
    assert not path.exists()
    assert read_pid(str(path)) is None


def test_second_process_is_refused_while_the_first_runs(tmp_path: Path) -> None:
    path = tmp_path / "agentvisor.pid"
    with open_pidfile(str(path)):
        second = open_in_subprocess(path)
        assert second.returncode == 7, second.stderr
        assert second.stdout.strip() == (
            f"another agentvisor (pid {os.getpid()}) is running with state_dir {tmp_path}; "
            "stop it first or use another state_dir"
        )
        assert read_pid(str(path)) == os.getpid()  # the refused one changed nothing
    after = open_in_subprocess(path)
    assert (after.returncode, after.stdout.strip()) == (0, "acquired")


def test_stale_pidfile_of_a_dead_process_does_not_block(tmp_path: Path) -> None:
    path = tmp_path / "agentvisor.pid"
    path.write_text("999999\n")  # left behind by a crash: nobody holds its lock
    with open_pidfile(str(path)):
        assert read_pid(str(path)) == os.getpid()


def test_already_running_in_the_same_process_too(tmp_path: Path) -> None:
    path = tmp_path / "agentvisor.pid"
    with open_pidfile(str(path)), pytest.raises(AlreadyRunning), open_pidfile(str(path)):
        pass


@pytest.mark.parametrize("content", ["", "garbage", "-5", "0"])
def test_read_pid_ignores_files_without_a_pid(tmp_path: Path, content: str) -> None:
    path = tmp_path / "agentvisor.pid"
    path.write_text(content)
    assert read_pid(str(path)) is None
