"""The SDK for agent files: tools, the ReAct loop, language models and the agent contract.

An agent file imports what it needs from here::

    from agentvisor.agent import BaseTool, ToolResult, create_react_agent

(the seeds' ``from myagent import ...`` and ``from myagent.tool.base_tool
import ...`` become this one import). Anything with a ``stream(message,
session)`` yielding the events below is an agent; ``create_react_agent``
builds one from tools and a language model.
"""

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
