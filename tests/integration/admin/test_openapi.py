"""``/openapi.json`` describes every route of the app, and ``/docs`` is served offline."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, cast

from openapi_spec_validator import validate
from quart_trio import QuartTrio

from agentvisor import __version__
from agentvisor.admin.app import AdminDeps, create_app
from agentvisor.admin.openapi import build_document
from agentvisor.admin.routes.docs import ASSETS, operations_page, swagger_ui_dir
from tests.integration.admin.harness import TOKEN, running_admin, sleeper, write_config

#: Quart's own file route (the console's build): not part of the API.
#: Not API: Quart's static route and the web console's pages and files (admin/console.py).
STATIC_ENDPOINTS = frozenset(
    {"static", "console.home", "console.deep_link", "console.asset", "console.favicon"}
)
DOCUMENTED_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})


def bare_app() -> QuartTrio:
    """The app as the daemon builds it; routes are registered without touching ``supervisor``."""
    deps = AdminDeps(
        supervisor=cast(Any, None), version=__version__, pid=1, started_at=0.0, config_path=""
    )
    return create_app(deps)


def template(path: str) -> str:
    """``/a/<x>/b`` and ``/a/{y}/b`` alike as ``/a/{}/b``: parameter names may differ."""
    return re.sub(r"<(?:[^:>]+:)?[^>]+>|\{[^}]+\}", "{}", path)


def routes_of_app() -> set[tuple[str, str]]:
    return {
        (method, template(rule.rule))
        for rule in bare_app().url_map.iter_rules()
        if rule.endpoint not in STATIC_ENDPOINTS
        for method in (rule.methods or set()) & DOCUMENTED_METHODS
    }


def routes_of_document(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), template(path))
        for path, item in document["paths"].items()
        for method in item
        if method.upper() in DOCUMENTED_METHODS
    }


def test_every_route_is_documented_and_every_documented_path_is_a_route() -> None:
    document = build_document(__version__, auth=True)
    routes, documented = routes_of_app(), routes_of_document(document)
    assert sorted(routes - documented) == [], "routes missing from agentvisor/admin/openapi/"
    assert sorted(documented - routes) == [], "documented paths that the app does not serve"


def test_the_document_is_valid_openapi() -> None:
    for auth in (True, False):
        validate(build_document(__version__, auth=auth))


def test_operation_ids_are_unique_and_path_parameters_declared() -> None:
    document = build_document(__version__, auth=True)
    ids: list[str] = []
    for path, item in document["paths"].items():
        for operation in item.values():
            ids.append(operation["operationId"])
            declared = {p["name"] for p in operation["parameters"] if p["in"] == "path"}
            assert declared == set(re.findall(r"\{([^}]+)\}", path)), (path, declared)
    assert len(ids) == len(set(ids))


async def test_served_document_and_docs_page(tmp_path: Path) -> None:
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha"))
    async with running_admin(config) as admin, admin.tcp(TOKEN) as client:
        served = await client.get("/openapi.json")
        page = await client.get("/docs")
        assets = {name: await client.get(f"/docs/assets/{name}") for name in ASSETS}
        missing = await client.get("/docs/assets/../../agentvisor.toml")
        unknown = await client.get("/docs/assets/index.j2")
    assert served.status_code == 200
    assert served.json() == build_document(admin.deps.version, auth=True)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    # Offline: the page names no other host; its scripts and styles are ours.
    assert not re.search(r"(src|href)=\"(https?:)?//", page.text)
    for name, response in assets.items():
        assert response.status_code == 200, name
        assert response.headers["content-type"] == ASSETS[name][1]
        assert response.content
    assert missing.status_code == 404
    assert unknown.status_code == 404


def test_swagger_ui_is_installed() -> None:
    # /docs falls back to a plain list without it; the dependency is meant to be there.
    assert swagger_ui_dir() is not None


def test_the_page_without_swagger_ui_lists_every_operation() -> None:
    document = build_document(__version__, auth=False)
    page = operations_page(document)
    for path, item in document["paths"].items():
        assert path in page
        for method in item:
            assert method.upper() in page
