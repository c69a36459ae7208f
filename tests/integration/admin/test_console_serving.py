"""``/`` without a built console says how to build it; the API's 404s stay JSON."""

from __future__ import annotations

import gzip
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


async def test_hashed_assets_go_gzipped_to_browsers_that_accept_it(
    monkeypatch: Any, tmp_path: Any
) -> None:
    # issue 8: the console's first load was 1,050 KiB on the wire, 346 KiB gzipped.
    script = b"export const greeting = 'hello';\n" * 500
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "app-abc123.js").write_bytes(script)
    monkeypatch.setattr(console, "static_dir", lambda: tmp_path)
    deps = AdminDeps(
        supervisor=cast(Any, None), version=__version__, pid=1, started_at=0.0, config_path=""
    )
    client = create_app(deps).test_client()
    zipped = await client.get("/assets/app-abc123.js", headers={"Accept-Encoding": "gzip, br"})
    assert zipped.status_code == 200
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert zipped.headers["Vary"] == "Accept-Encoding"
    assert "immutable" in zipped.headers["Cache-Control"]
    assert zipped.headers["Content-Type"].startswith(("text/javascript", "application/javascript"))
    body = await zipped.get_data()
    assert len(body) < len(script) / 10
    assert gzip.decompress(body) == script
    again = await client.get(
        "/assets/app-abc123.js",
        headers={"Accept-Encoding": "gzip", "If-None-Match": zipped.headers["ETag"]},
    )
    assert again.status_code == 304
    plain = await client.get("/assets/app-abc123.js", headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers
    assert await plain.get_data() == script
    assert plain.headers["Vary"] == "Accept-Encoding"
    for bad in ("/assets/missing.js", "/assets/..%2F..%2Fetc%2Fpasswd.js"):
        assert (await client.get(bad, headers={"Accept-Encoding": "gzip"})).status_code == 404
