"""``default_llm()``: a real model when one is configured, the offline one otherwise.

Agent files call it so that the same file runs on a laptop without a key
(the examples, a first ``agentvisor serve``) and in production against a real
endpoint, without an edit. The fallback is said once in the worker's log, so
nobody mistakes the offline model's canned replies for a broken model.
"""

from __future__ import annotations

import logging
import os

from agentvisor.agent.llm.base import LLM
from agentvisor.agent.llm.openai import OpenAIChat
from agentvisor.agent.llm.scripted import ScriptedLLM

__all__ = ["default_llm"]

logger = logging.getLogger("agentvisor.agent")


def default_llm() -> LLM:
    """``OpenAIChat()`` if ``OPENAI_API_KEY`` or ``OPENAI_BASE_URL`` is set, else offline.

    Read when called (at agent creation), so the environment the worker was
    started with decides.
    """
    if os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"):
        return OpenAIChat()
    logger.warning(
        "No model configured (set OPENAI_API_KEY or OPENAI_BASE_URL): "
        "using the offline ScriptedLLM, whose replies are rule-based."
    )
    return ScriptedLLM()
