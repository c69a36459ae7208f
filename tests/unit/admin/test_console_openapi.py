"""The console's typed client is generated from a committed copy of the app's OpenAPI document.

A changed endpoint makes this fail until ``npm run openapi`` (in web-console/)
regenerates the copy and ``src/api/schema.d.ts``; the console's Vitest suite
checks that ``schema.d.ts`` matches the copy, and ``vue-tsc`` in its build
then fails wherever the console uses the endpoint the old way.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

CONSOLE = Path(__file__).resolve().parents[3] / "web-console"


def test_the_consoles_copy_of_the_openapi_document_is_current() -> None:
    spec = importlib.util.spec_from_file_location(
        "dump_openapi", CONSOLE / "scripts/dump_openapi.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    committed = (CONSOLE / "openapi.json").read_text()
    assert committed == module.console_document(), "run `npm run openapi` in web-console/"
