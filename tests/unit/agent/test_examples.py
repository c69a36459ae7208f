"""The example agent files, and the seeds' agent files with their import changed, work offline."""

from __future__ import annotations

import runpy
import textwrap
from pathlib import Path
from typing import Any

import pytest

from agentvisor.agent import Agent, FinalAnswer, PartialAnswer, ToolCall, ToolOutput
from tests.unit.agent.example_files import load_example
from tests.unit.agent.fake_session import FakeSession, run_turn


async def test_the_echo_agent_streams_the_message_back_and_counts_turns() -> None:
    agent = load_example("echo_agent").agent
    assert isinstance(agent, Agent)
    history = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "Echo #1: a"}]
    events = await run_turn(agent, "hello there", FakeSession(history=history))
    assert (
        "".join(e.delta for e in events if isinstance(e, PartialAnswer)) == "Echo #2: hello there"
    )
    assert events[-1] == FinalAnswer("Echo #2: hello there")


async def test_the_weather_agent_looks_up_several_cities_offline(no_model_env: Any) -> None:
    agent = load_example("weather_agent").agent
    events = await run_turn(agent, "What's the weather in Paris and Tokyo?")
    assert [(e.tool, dict(e.arguments)) for e in events if isinstance(e, ToolCall)] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Tokyo"}),
    ]
    assert all(e.success for e in events if isinstance(e, ToolOutput))
    final = events[-1]
    assert isinstance(final, FinalAnswer)
    assert final.content.startswith("[offline model] ")
    assert "Paris: partly cloudy, 17°C" in final.content
    assert "Tokyo: cloudy, 19°C" in final.content


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("北京今天天气怎么样", "北京 (Beijing): sunny, 25°C"),
        ("weather in Berlin?", "get_weather failed: no weather data for 'Berlin'"),
    ],
)
async def test_the_weather_agent_answers_in_chinese_and_about_unknown_cities(
    no_model_env: Any, message: str, expected: str
) -> None:
    agent = load_example("weather_agent").agent
    assert expected in await agent.arun(message)


async def test_the_calculator_agent_computes_and_reports_errors(no_model_env: Any) -> None:
    agent = load_example("calculator_agent").create_agent()
    assert await agent.arun("What is (17 + 4) * 3 / 7?") == (
        "[offline model] calculate returned: (17 + 4) * 3 / 7 = 9.0"
    )
    assert (
        await agent.arun("and 1 / 0?")
        == "[offline model] calculate failed: 1 / 0: division by zero"
    )


SEED_003 = """
    from agentvisor.agent import create_react_agent
    from agentvisor.agent import BaseTool, ToolResult

    class GreetTool(BaseTool):
        name = "greet"
        description = "向用户问好"
        parameters = {
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "用户名"}
            },
            "required": ["name"]
        }

        async def execute(self, name: str) -> ToolResult:
            return ToolResult(output=f"Hello, {name}!")

    agent = create_react_agent(
        name="greeter",
        tools=[GreetTool()],
        system_prompt="You are a friendly assistant.",
        max_steps=3
    )
"""

SEED_001 = """
    from agentvisor.agent import create_react_agent
    from agentvisor.agent import BaseTool, ToolResult

    class EchoTool(BaseTool):
        name: str = "echo"
        description: str = "Echo back a message"

        async def execute(self, message: str) -> ToolResult:
            return ToolResult(
                success=True,
                content=f"Echo: {message}"
            )

    def create_agent():
        return create_react_agent(
            name="echo-agent",
            tools=[EchoTool()],
            system_prompt="You are an echo agent.",
        )
"""


def load_seed(tmp_path: Path, source: str) -> dict[str, Any]:
    path = tmp_path / "my_agent.py"
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return runpy.run_path(str(path))


async def test_the_seeds_greeter_agent_file_works(no_model_env: Any, tmp_path: Path) -> None:
    agent = load_seed(tmp_path, SEED_003)["agent"]
    assert agent.name == "greeter"
    assert await agent.arun("Please greet Alice") == "[offline model] greet returned: Hello, Alice!"


async def test_the_seeds_echo_agent_file_works(no_model_env: Any, tmp_path: Path) -> None:
    agent = load_seed(tmp_path, SEED_001)["create_agent"]()
    events = await run_turn(agent, "echo hello world")
    assert [e for e in events if isinstance(e, ToolOutput)] == [
        ToolOutput(events[0].call_id, "echo", success=True, output="Echo: hello world")
    ]
    assert events[-1] == FinalAnswer("[offline model] echo returned: Echo: hello world")
