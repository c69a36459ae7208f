"""The user-facing docs are generated where they can be, current, and link only inside the repo."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agentvisor.admin.openapi import markdown

ROOT = Path(__file__).resolve().parents[2]
USER_DOCS = sorted(
    [
        ROOT / "README.md",
        ROOT / "agentvisor.toml.example",
        ROOT / "examples" / "README.md",
        *(ROOT / "docs").glob("*.md"),
        *(ROOT / "contrib").rglob("*.md"),
    ]
)
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_the_committed_api_reference_is_current() -> None:
    assert (ROOT / "docs" / "api.md").read_text() == markdown.render(), "run `make docs`"


@pytest.mark.parametrize("doc", USER_DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_user_docs_point_only_at_files_in_the_repository(doc: Path) -> None:
    text = doc.read_text()
    assert "../shared" not in text
    for target in LINK.findall(text):
        if "://" in target or target.startswith("mailto:"):
            continue
        assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"
