"""Hatchling build hook: the wheel and sdist carry the built web console.

``web-console/`` builds (``npm ci && npm run build``) into
``agentvisor/admin/static/``, which is gitignored and listed as an artifact in
pyproject.toml. Before a wheel or sdist is built this hook builds the console
when those files are missing or older than the console's sources, so
``pip install .`` and ``python -m build`` need no ``make console`` first. A
fresh build is reused (``make test`` and ``make run`` build it already), and
a tree without the console's sources (a wheel built from our sdist) uses the
files the sdist carries. Editable installs skip the hook: they serve the
source tree, which ``make run`` / ``make console`` build.

With neither npm nor built files the build stops with one line saying so.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

CONSOLE = "web-console"
BUILT = "agentvisor/admin/static/index.html"
#: What the build reads; a change to any of these makes the built files stale (as in the Makefile).
SOURCE_DIRS = ("src", "public")
SOURCE_FILES = (
    "index.html",
    "vite.config.ts",
    "tsconfig.json",
    "package.json",
    "package-lock.json",
)


def newest_source(console: Path) -> float | None:
    """The newest mtime among the console's sources; None when the tree has none."""
    paths = [console / name for name in SOURCE_FILES]
    for folder in SOURCE_DIRS:
        paths.extend(p for p in (console / folder).rglob("*") if p.is_file())
    times = [p.stat().st_mtime for p in paths if p.is_file()]
    return max(times) if times else None


def console_is_stale(root: Path) -> bool:
    """Whether the built console is missing, or older than a source it was built from."""
    built = root / BUILT
    sources = newest_source(root / CONSOLE)
    if not built.is_file():
        return True
    return sources is not None and sources > built.stat().st_mtime


def build_console(root: Path) -> None:
    console = root / CONSOLE
    if not (console / "package.json").is_file():
        raise SystemExit(
            f"agentvisor build: the web console is not built ({BUILT} is missing) and this tree "
            f"has no {CONSOLE}/ sources to build it from"
        )
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit(
            f"agentvisor build: the web console needs building ({BUILT} is missing or older "
            f"than {CONSOLE}/) and npm is not on PATH; install Node.js 20+ and npm, or run "
            "`make console` where they are, then build again"
        )
    installed = console / "node_modules" / ".installed"
    lock = console / "package-lock.json"
    if not installed.is_file() or installed.stat().st_mtime < lock.stat().st_mtime:
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=console, check=True)
        installed.touch()
    subprocess.run([npm, "run", "build"], cwd=console, check=True)


class CustomBuildHook(BuildHookInterface):
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name == "wheel" and version == "editable":
            return
        root = Path(self.root)
        if console_is_stale(root):
            self.app.display_info("Web console: building it (npm ci && npm run build)")
            build_console(root)
        else:
            self.app.display_info(f"Web console: {BUILT} is up to date")
