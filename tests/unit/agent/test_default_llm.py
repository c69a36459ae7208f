"""default_llm(): a real model when one is configured, the offline one (said once) otherwise."""

from __future__ import annotations

import logging

import pytest

from agentvisor.agent import OpenAIChat, ScriptedLLM, default_llm


def test_without_a_key_or_url_the_offline_model_is_used_and_logged(
    no_model_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="agentvisor.agent"):
        assert isinstance(default_llm(), ScriptedLLM)
    [record] = caplog.records
    assert record.name == "agentvisor.agent"
    assert "offline ScriptedLLM" in record.getMessage()
    assert "\n" not in record.getMessage()


def test_a_base_url_selects_openai_chat_configured_from_the_environment(
    no_model_env: pytest.MonkeyPatch,
) -> None:
    no_model_env.setenv("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1/")
    no_model_env.setenv("AGENTVISOR_MODEL", "llama3.1")
    llm = default_llm()
    assert isinstance(llm, OpenAIChat)
    assert (llm.base_url, llm.model, llm.api_key) == ("http://127.0.0.1:11434/v1", "llama3.1", None)


def test_a_key_alone_selects_openai_with_its_defaults(no_model_env: pytest.MonkeyPatch) -> None:
    no_model_env.setenv("OPENAI_API_KEY", "sk-secret")
    llm = default_llm()
    assert isinstance(llm, OpenAIChat)
    assert (llm.base_url, llm.model) == ("https://api.openai.com/v1", "gpt-4o-mini")
    assert "sk-secret" not in repr(llm)


def test_explicit_arguments_win_over_the_environment(no_model_env: pytest.MonkeyPatch) -> None:
    no_model_env.setenv("OPENAI_API_KEY", "sk-env")
    llm = OpenAIChat(model="m", base_url="http://h/v1", api_key="")
    assert (llm.model, llm.url, llm.api_key) == ("m", "http://h/v1/chat/completions", "")
