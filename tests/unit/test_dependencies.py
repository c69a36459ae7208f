"""Every third-party module the package imports is a declared runtime dependency.

A module brought only by another dependency (h11 by Hypercorn, werkzeug by
Quart) works until that dependency stops bringing it; a fresh venv with only
the wheel would then fail at import. The imports are read from the source
(every ``import`` statement, at any depth) and mapped to their distributions
through the installed metadata.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def imported_top_level_modules() -> set[str]:
    names: set[str] = set()
    for path in (REPO / "agentvisor").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
            elif (  # importlib.import_module("name"): the docs page's optional bundle
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "import_module"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                names.add(node.args[0].value.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"agentvisor", "__future__"}


def declared_distributions() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return {
        re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        for requirement in project["dependencies"]
    }


def test_every_imported_module_belongs_to_a_declared_dependency() -> None:
    owners = packages_distributions()
    declared = declared_distributions()
    undeclared = {
        module: owners.get(module, ["(not installed)"])
        for module in sorted(imported_top_level_modules())
        if not {d.lower().replace("_", "-") for d in owners.get(module, [])} & declared
    }
    assert not undeclared, f"imported but not in [project] dependencies: {undeclared}"


def test_the_modules_the_issue_named_are_among_those_checked() -> None:
    assert {"h11", "werkzeug", "sniffio", "trio", "quart"} <= imported_top_level_modules()
