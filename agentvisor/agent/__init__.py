"""The SDK for agent files: tools, the ReAct loop, language models and the agent contract.

An agent file imports what it needs from here::

    from agentvisor.agent import BaseTool, ToolResult, create_react_agent

(the seeds' ``from myagent import ...`` and ``from myagent.tool.base_tool
import ...`` become this one import). Anything with a ``stream(message,
session)`` yielding the events below is an agent; ``create_react_agent``
builds one from tools and a language model.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from agentvisor.agent.types import (
    Agent,
    AgentEvent,
    FinalAnswer,
    PartialAnswer,
    Session,
    Thinking,
    ToolCall,
    ToolOutput,
)

if TYPE_CHECKING:
    from agentvisor.agent.llm import (
        LLM,
        LLMDelta,
        LLMError,
        OpenAIChat,
        ReasoningDelta,
        ScriptedLLM,
        TextDelta,
        ToolRequest,
        default_llm,
    )
    from agentvisor.agent.react import ReactAgent, create_react_agent
    from agentvisor.agent.tools import BaseTool, ToolResult

#: Imported on first use (PEP 562): the router and the worker runtime read the event
#: types above, and need not import the LLM clients (httpx) and the ReAct loop with them.
_LAZY = {
    **dict.fromkeys(
        (
            "LLM",
            "LLMDelta",
            "LLMError",
            "OpenAIChat",
            "ReasoningDelta",
            "ScriptedLLM",
            "TextDelta",
            "ToolRequest",
            "default_llm",
        ),
        "agentvisor.agent.llm",
    ),
    "ReactAgent": "agentvisor.agent.react",
    "create_react_agent": "agentvisor.agent.react",
    "BaseTool": "agentvisor.agent.tools",
    "ToolResult": "agentvisor.agent.tools",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "LLM",
    "Agent",
    "AgentEvent",
    "BaseTool",
    "FinalAnswer",
    "LLMDelta",
    "LLMError",
    "OpenAIChat",
    "PartialAnswer",
    "ReactAgent",
    "ReasoningDelta",
    "ScriptedLLM",
    "Session",
    "TextDelta",
    "Thinking",
    "ToolCall",
    "ToolOutput",
    "ToolRequest",
    "ToolResult",
    "create_react_agent",
    "default_llm",
]
