"""docs/configuration.md is rendered from the models and stays current."""

from __future__ import annotations

from pathlib import Path

from agentvisor.config import reference
from agentvisor.config.load import parse_config
from agentvisor.config.model import Config

DOC = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"


def test_every_key_has_a_meaning_and_every_meaning_a_key() -> None:
    assert reference.check_complete() == []


def test_the_committed_reference_is_current() -> None:
    assert DOC.read_text() == reference.render(), "run `make docs`"


def test_the_documented_defaults_are_the_defaults_the_loader_applies() -> None:
    lines = []
    for table in (reference.SUPERVISOR, reference.ADMIN, reference.ROUTER):
        lines.append(table.heading)
        for field in reference.fields(table.cls):
            text = reference.default_toml(field)
            if text is not None:
                lines.append(f"{field.name} = {text}")
    lines += ["[agents.a]", 'command = "a"']
    for table, prefix in ((reference.AGENT, ""), (reference.HEALTH, "health.")):
        for field in reference.fields(table.cls):
            text = reference.default_toml(field)
            if text is not None:
                lines.append(f"{prefix}{field.name} = {text}")
    parsed = parse_config("\n".join(lines) + "\n", "agentvisor.toml", {})
    assert parsed == parse_config('[agents.a]\ncommand = "a"\n', "agentvisor.toml", {})
    assert (parsed.supervisor, parsed.admin, parsed.router) == (
        Config().supervisor,
        Config().admin,
        Config().router,
    )
