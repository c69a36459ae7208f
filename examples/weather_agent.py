"""A weather assistant: the seeds' ``ws_weather_agent.py`` on agentvisor's SDK.

The ``get_weather`` tool answers from canned data for a few cities, so the
example needs no weather service. Without a configured model the offline
``ScriptedLLM`` drives it (try "What's the weather in Paris and Tokyo?" or
"北京今天天气怎么样"); with ``OPENAI_API_KEY`` / ``OPENAI_BASE_URL`` set, a
real model does. Run it with ``agentvisor serve examples/weather_agent.py
--port 8081``.
"""

from __future__ import annotations

from agentvisor.agent import BaseTool, ToolResult, create_react_agent, default_llm

# city → (condition, °C, humidity %); Chinese names are aliases of the same entry.
WEATHER = {
    "Beijing": ("sunny", 25, 30),
    "Shanghai": ("light rain", 22, 85),
    "Tokyo": ("cloudy", 19, 60),
    "London": ("overcast", 14, 78),
    "Paris": ("partly cloudy", 17, 65),
    "New York": ("clear", 21, 50),
    "San Francisco": ("foggy", 16, 88),
}
ALIASES = {
    "北京": "Beijing",
    "上海": "Shanghai",
    "东京": "Tokyo",
    "伦敦": "London",
    "巴黎": "Paris",
}


class WeatherTool(BaseTool):
    name = "get_weather"
    description = "Get the current weather for a city."
    parameters = {
        "type": "object",
        "properties": {
            "city": {
                "type": "string",
                "description": "City name, e.g. Beijing or 北京",
                # Hints for models; the offline model also finds these names in the message.
                "examples": [*WEATHER, *ALIASES],
            }
        },
        "required": ["city"],
    }

    async def execute(self, city: str) -> ToolResult:
        known = {name.lower(): name for name in WEATHER}
        key = ALIASES.get(city.strip()) or known.get(city.strip().lower())
        if key is None:
            return ToolResult(
                success=False,
                error=f"no weather data for {city!r} (this example knows {', '.join(WEATHER)})",
            )
        condition, celsius, humidity = WEATHER[key]
        label = key if city.strip() == key else f"{city.strip()} ({key})"
        return ToolResult(output=f"{label}: {condition}, {celsius}°C, humidity {humidity}%")


agent = create_react_agent(
    name="weather-assistant",
    tools=[WeatherTool()],
    system_prompt=(
        "You are a friendly weather assistant. Use get_weather for every city the user "
        "asks about, then answer briefly in the user's language."
    ),
    max_steps=5,
    llm=default_llm(),
)
