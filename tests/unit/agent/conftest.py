from __future__ import annotations

import pytest


@pytest.fixture
def no_model_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """An environment naming no model, as on a fresh machine: default_llm() is offline."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AGENTVISOR_MODEL"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch
