"""Write the admin API's OpenAPI document, as ``GET /openapi.json`` serves it, to a file.

Built by the same ``build_document`` the running app serves (no server, no
network), with the token required, as in production. ``npm run openapi``
runs this and then openapi-typescript, which turns it into
``src/api/schema.d.ts``; ``tests/unit/admin/test_console_openapi.py`` fails
while the committed copy differs from what the app serves.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from agentvisor import __version__
from agentvisor.admin.openapi import build_document


def console_document() -> str:
    document = build_document(__version__, auth=True)
    document["info"]["version"] = "console"  # the version is no part of the contract
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    Path(sys.argv[1]).write_text(console_document())
