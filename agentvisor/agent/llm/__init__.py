"""Language models for the ReAct loop: the ``LLM`` protocol and its implementations."""

from agentvisor.agent.llm.base import (
    LLM,
    LLMDelta,
    LLMError,
    Message,
    ReasoningDelta,
    TextDelta,
    ToolDefinition,
    ToolRequest,
)
from agentvisor.agent.llm.default import default_llm
from agentvisor.agent.llm.openai import OpenAIChat
from agentvisor.agent.llm.scripted import ScriptedLLM

__all__ = [
    "LLM",
    "LLMDelta",
    "LLMError",
    "Message",
    "OpenAIChat",
    "ReasoningDelta",
    "ScriptedLLM",
    "TextDelta",
    "ToolDefinition",
    "ToolRequest",
    "default_llm",
]
