"""An example agent written by ``agentvisor init``: edit it, or write your own beside it.

An agent file is any Python file with a module-level ``agent`` (or a
``create_agent()`` function) whose ``stream(message, session)`` yields events;
``create_react_agent`` builds one from tools and a language model. Without a
model configured the offline ``ScriptedLLM`` drives it (its replies start with
``[offline model]``): try "count: hello big world". To use a
real model, set ``OPENAI_API_KEY`` (and ``OPENAI_BASE_URL`` for any
OpenAI-compatible server: vLLM, Ollama, llama.cpp) in the agent's
``environment`` in agentvisor.toml.

Try it on its own with ``agentvisor serve agents/assistant.py --port 8081``.
"""

from __future__ import annotations

from agentvisor.agent import BaseTool, ToolResult, create_react_agent, default_llm


class CountWordsTool(BaseTool):
    name = "count_words"
    description = "Count the words and characters of a text."
    parameters = {
        "type": "object",
        "properties": {"text": {"type": "string", "description": "The text to count"}},
        "required": ["text"],
    }

    async def execute(self, text: str) -> ToolResult:
        words = len(text.split())
        return ToolResult(output=f"{words} words, {len(text)} characters")


agent = create_react_agent(
    name="assistant",
    tools=[CountWordsTool()],
    system_prompt="You are a helpful assistant. Use count_words when asked to count a text.",
    max_steps=5,
    llm=default_llm(),
)
