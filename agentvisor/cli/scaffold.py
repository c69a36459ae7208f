"""``agentvisor init [DIR]``: write a starter agentvisor.toml and an example agent.

The files come from the package (``agentvisor/starter/``), so a plain
``pip install agentvisor`` is enough. Nothing is overwritten: when any of the
files is already there, nothing at all is written and the command says which
file is in the way. Each file is created exclusively (``open(..., "x")``), so
a file that appears meanwhile is not clobbered either.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

from agentvisor.errors import AgentvisorError

#: What ``init`` writes: path in DIR → file of ``agentvisor/starter/``.
STARTER_FILES = {
    "agentvisor.toml": "agentvisor.toml",
    os.path.join("agents", "assistant.py"): "assistant.py",
}


class InitRefused(AgentvisorError):
    """``agentvisor init`` would overwrite a file, or cannot write where it was asked to."""

    code = "INIT_REFUSED"


def starter_text(name: str) -> str:
    return files("agentvisor.starter").joinpath(name).read_text(encoding="utf-8")


def write_starter(directory: str) -> list[str]:
    """Write the starter files into ``directory`` (created if missing); their paths, in order."""
    root = Path(directory)
    if root.exists() and not root.is_dir():
        raise InitRefused(f"{directory} is not a directory")
    in_the_way = [name for name in STARTER_FILES if os.path.lexists(root / name)]
    if in_the_way:
        shown = ", ".join(str(root / name) for name in in_the_way)
        verb = "exists" if len(in_the_way) == 1 else "exist"
        raise InitRefused(f"{shown} already {verb}; nothing written (move it away or pick a DIR)")
    written: list[str] = []
    try:
        for name, source in STARTER_FILES.items():
            target = root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("x", encoding="utf-8") as file:
                file.write(starter_text(source))
            written.append(str(target))
    except OSError as error:
        why = "it appeared meanwhile" if isinstance(error, FileExistsError) else error.strerror
        done = f" (wrote {', '.join(written)})" if written else "; nothing written"
        raise InitRefused(
            f"cannot write {error.filename or directory}: {why or error}{done}"
        ) from None
    return written
