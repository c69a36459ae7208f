"""Shell completion in the real shells: bash, zsh and fish source what `completion SHELL`
prints, and a Tab is played the way each shell plays it (bash's COMP_* variables,
zsh's BUFFER/CURSOR with its _describe captured, fish's own `complete -C`).

zsh and fish come from Debian (`make shells`; `make test` runs it).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

from tests.e2e.test_daemon import (
    BIN,
    DEADLINE,
    all_running,
    daemon,  # noqa: F401  (the fixture)
    eventually,
)

ENV = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}


def shell(name: str, script: str) -> list[str]:
    path = shutil.which(name)
    assert path, f"{name} is not installed: run `make shells` (make test does)"
    result = subprocess.run(
        [path, "-c", script], capture_output=True, text=True, env=ENV, timeout=DEADLINE, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.splitlines()


def bash_tab(line: str) -> list[str]:
    """What bash offers for a Tab at the end of ``line``."""
    prog, *_ = line.split()
    words = shlex.split(line) + ([""] if line.endswith(" ") else [])
    script = f"""
        eval "$({prog} completion bash)"
        COMP_LINE={shlex.quote(line)}; COMP_POINT=${{#COMP_LINE}}
        COMP_WORDS=({" ".join(shlex.quote(w) for w in words)}); COMP_CWORD={len(words) - 1}
        _python_argcomplete {prog} {shlex.quote(words[-1])} {shlex.quote(words[-2])}
        printf '%s\\n' "${{COMPREPLY[@]}}"
    """
    return [offer.strip() for offer in shell("bash", script) if offer.strip()]


def zsh_tab(line: str) -> list[str]:
    prog, *_ = line.split()
    script = f"""
        autoload -U is-at-least
        compdef() {{ :; }}
        _describe() {{ print -l -- "${{(@P)2}}" }}
        source <({prog} completion zsh)
        BUFFER={shlex.quote(line)}; CURSOR=${{#BUFFER}}; words=({prog})
        _python_argcomplete
    """
    return [offer.split(":")[0] for offer in shell("zsh", script)]


def fish_tab(line: str) -> list[str]:
    prog, *_ = line.split()
    script = f"{prog} completion fish | source; complete -C {shlex.quote(line)}"
    return [offer.split("\t")[0] for offer in shell("fish", script)]


def test_bash_completes_commands_and_options() -> None:
    assert bash_tab("agentvisorctl sta") == ["status", "start", "stats"]
    assert bash_tab("agentvisorctl tail x --std") == ["--stderr", "--stdout"]
    assert "--follow" not in bash_tab("agentvisorctl tail x ")  # options only after a "-"
    assert bash_tab("agentvisor i") == ["init"]
    assert bash_tab("agentvisor completion ") == ["bash", "zsh", "fish"]


def test_zsh_completes_commands() -> None:
    assert zsh_tab("agentvisorctl res") == ["restart"]
    assert zsh_tab("agentvisor ch") == ["check"]


def test_fish_completes_commands() -> None:
    assert fish_tab("agentvisorctl res") == ["restart"]
    assert fish_tab("agentvisor se") == ["serve"]


def test_names_complete_to_the_services_of_the_running_agentvisor(
    daemon: tuple[subprocess.Popen[str], Path],  # noqa: F811
) -> None:
    _process, config = daemon
    eventually(lambda: all_running(config, 2), "both agents running")
    at = f"agentvisorctl -c {config}"
    assert sorted(bash_tab(f"{at} restart ")) == ["all", "alpha", "beta"]
    assert bash_tab(f"{at} show a") == ["alpha"]
    assert bash_tab(f"{at} logs search x --service b") == ["beta"]
    assert fish_tab(f"{at} scale b") == ["beta"]
    assert not {"alpha", "beta"} & set(bash_tab(f"{at} register "))  # a new name


def test_names_offer_nothing_when_agentvisor_is_not_running(tmp_path: Path) -> None:
    assert bash_tab(f"agentvisorctl -s {tmp_path / 'gone.sock'} show ") == []


def test_an_unknown_shell_is_a_usage_error() -> None:
    result = subprocess.run(
        [str(BIN / "agentvisorctl"), "completion", "tcsh"],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )
    assert result.returncode == 2
    assert "invalid choice: 'tcsh'" in result.stderr
