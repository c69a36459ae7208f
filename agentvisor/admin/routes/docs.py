"""``GET /openapi.json``, ``GET /docs`` and the page's assets, all served by us.

Nothing comes from a CDN: Swagger UI's script and style are read from the
``swagger-ui-bundle`` package, the page and its small script from
``admin/swagger/``. Without that package, ``/docs`` is a plain list of the
operations rendered here, so the page works offline either way.

``/docs`` and its assets need no token: they are the same static files for
everyone and hold no data, and a browser navigating to a page cannot send a
bearer header. ``/openapi.json`` requires the token like the API: the page
asks for it when the document answers 401, keeps it for the tab and sends it
with the document's request and with every "try it out" call.
"""

from __future__ import annotations

import html
import importlib
import importlib.resources
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio
from quart import Blueprint, Response, jsonify
from werkzeug.exceptions import NotFound

from agentvisor.admin.openapi import build_document

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

    from agentvisor.admin.app import AdminDeps

#: Served for a day; the names change when Swagger UI does (a new bundle path).
ASSET_MAX_AGE = 86400
#: The page loads only what we serve; Swagger UI sets inline styles and data: images.
DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"
)
#: Asset name → (where it comes from, its content type). Nothing else is served.
ASSETS: Mapping[str, tuple[str, str]] = {
    "swagger-ui-bundle.js": ("bundle", "text/javascript; charset=utf-8"),
    "swagger-ui.css": ("bundle", "text/css; charset=utf-8"),
    "favicon-32x32.png": ("bundle", "image/png"),
    "favicon-16x16.png": ("bundle", "image/png"),
    "agentvisor-docs.js": ("ours", "text/javascript; charset=utf-8"),
    "agentvisor-docs.css": ("ours", "text/css; charset=utf-8"),
}
METHODS = ("get", "post", "put", "patch", "delete")


def swagger_ui_dir() -> Path | None:
    """Swagger UI's files from the ``swagger-ui-bundle`` package, if it is installed."""
    try:
        bundle = importlib.import_module("swagger_ui_bundle")
    except ImportError:
        return None
    path = Path(str(bundle.swagger_ui_path))
    return path if (path / "swagger-ui-bundle.js").is_file() else None


def our_file(name: str) -> Traversable:
    return importlib.resources.files("agentvisor.admin").joinpath("swagger", name)


def operations_page(document: Mapping[str, Any]) -> str:
    """The page without Swagger UI: every operation with its summary, grouped by tag."""
    rows: dict[str, list[str]] = {}
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                op = item[method]
                row = (
                    f"<tr><td><code>{method.upper()}</code></td><td><code>{html.escape(path)}"
                    f"</code></td><td>{html.escape(op.get('summary', ''))}</td></tr>"
                )
                rows.setdefault(op["tags"][0], []).append(row)
    sections = "".join(
        f"<h2>{html.escape(tag)}</h2><table>{''.join(lines)}</table>" for tag, lines in rows.items()
    )
    title = html.escape(document["info"]["title"])
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"</head><body><h1>{title} {html.escape(document['info']['version'])}</h1>"
        '<p>The full document is <a href="openapi.json">openapi.json</a>.</p>'
        f"{sections}</body></html>"
    )


def docs_blueprint(deps: AdminDeps) -> Blueprint:
    blueprint = Blueprint("docs", __name__)
    document = build_document(deps.version, auth=deps.token is not None)
    bundle = swagger_ui_dir()

    def page_headers(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = DOCS_CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    @blueprint.get("/openapi.json")
    async def openapi() -> Response:
        return jsonify(document)

    @blueprint.get("/docs")
    async def docs() -> Response:
        if bundle is None:
            text = operations_page(document)
        else:
            text = await trio.to_thread.run_sync(our_file("index.html").read_text)
        return page_headers(Response(text, status=200, content_type="text/html; charset=utf-8"))

    @blueprint.get("/docs/assets/<name>")
    async def docs_asset(name: str) -> Response:
        source, content_type = ASSETS.get(name, ("", ""))
        read: Callable[[], bytes]
        if source == "ours":
            read = our_file(name).read_bytes
        elif source == "bundle" and bundle is not None:
            read = (bundle / name).read_bytes
        else:
            raise NotFound()
        data = await trio.to_thread.run_sync(read)
        response = Response(data, status=200, content_type=content_type)
        response.headers["Cache-Control"] = f"public, max-age={ASSET_MAX_AGE}"
        return page_headers(response)

    return blueprint
