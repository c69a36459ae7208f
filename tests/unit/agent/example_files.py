"""Load the files of ``examples/`` as the worker does: by path, as modules."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def load_example(stem: str) -> ModuleType:
    """Import ``examples/<stem>.py`` under a private module name."""
    spec = importlib.util.spec_from_file_location(f"_example_{stem}", EXAMPLES / f"{stem}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
