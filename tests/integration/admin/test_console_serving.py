"""``/`` without a built console says how to build it; the API's 404s stay JSON."""

from __future__ import annotations

from typing import Any, cast

from agentvisor import __version__
from agentvisor.admin import console
from agentvisor.admin.app import AdminDeps, create_app
from agentvisor.admin.console import is_console_path


def test_console_paths_are_the_pages_and_assets_not_the_api() -> None:
    assert is_console_path("/")
    assert is_console_path("/services/weather")
    assert is_console_path("/assets/index-abc.js")
    assert not is_console_path("/api/v1/info")
    assert not is_console_path("/metrics")
    assert not is_console_path("/openapi.json")


async def test_an_unbuilt_console_says_how_to_build_it(monkeypatch: Any, tmp_path: Any) -> None:
    monkeypatch.setattr(console, "static_dir", lambda: tmp_path)  # an empty static dir
    deps = AdminDeps(
        supervisor=cast(Any, None), version=__version__, pid=1, started_at=0.0, config_path=""
    )
    client = create_app(deps).test_client()
    response = await client.get("/services/weather")
    assert response.status_code == 503
    assert "make console" in await response.get_data(as_text=True)
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    missing = await client.get("/nothing-here")
    assert missing.status_code == 404
    assert missing.is_json
