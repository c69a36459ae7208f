"""The web console: the built files of ``web-console/`` served at ``/``.

``npm run build`` in ``web-console/`` writes them to ``admin/static/`` (kept
out of git, carried by the wheel). ``/`` and the console's own pages (deep
links such as ``/services/weather``) answer ``index.html``; ``/assets/NAME``
are Vite's content-hashed files, cached for a year, and sent gzipped to a
browser that accepts it (compressed once, on first request, and kept: a
hashed name never changes content). Everything here needs no
token: these are the same static files for everyone and hold no data, and a
browser following a link cannot send a bearer header; the console asks for
the token and sends it with every API call.

The pages run only scripts they load from us (no inline script, no CDN):
``CONSOLE_CSP``. Element Plus and ECharts set ``style`` attributes, hence
``'unsafe-inline'`` for styles alone. When the files are not built, ``/``
says how to build them.
"""

from __future__ import annotations

import gzip
import importlib.resources
import mimetypes
from typing import TYPE_CHECKING

import trio
from quart import Blueprint, Response, request, send_from_directory
from werkzeug.security import safe_join

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

#: The console's top-level pages (vue-router paths); a deep link below one answers index.html.
CONSOLE_PAGES = (
    "dashboard",
    "services",
    "cluster",
    "connections",
    "routing",
    "logs",
    "events",
    "login",
)
#: Hashed assets never change under one name.
ASSET_MAX_AGE = 365 * 86400
#: Assets worth compressing (fonts and images come compressed).
COMPRESSIBLE = (".js", ".css", ".svg", ".json", ".map", ".txt")
CONSOLE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
NOT_BUILT = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>agentvisor console not built</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto">
<h1>The web console is not built</h1>
<p>This agentvisor runs from a source tree whose console has not been built yet.
Build it once (Node.js 20 and npm are needed only for this step):</p>
<pre>make console</pre>
<p>or <code>cd web-console &amp;&amp; npm ci &amp;&amp; npm run build</code>; <code>make run</code>
does it for you. The API is available meanwhile: <a href="/docs">/docs</a>,
<a href="/api/v1/info">/api/v1/info</a>, <a href="/metrics">/metrics</a>.</p>
</body></html>
"""


def static_dir() -> Traversable:
    return importlib.resources.files("agentvisor.admin").joinpath("static")


def is_console_path(path: str) -> bool:
    """Whether ``path`` is one of the console's pages or files (served without a token)."""
    if path in ("/", "/favicon.svg") or path.startswith("/assets/"):
        return True
    top = path.strip("/").partition("/")[0]
    return top in CONSOLE_PAGES


def page_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONSOLE_CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def console_blueprint() -> Blueprint:
    blueprint = Blueprint("console", __name__)
    root = static_dir()

    async def index() -> Response:
        page = root.joinpath("index.html")
        if not await trio.to_thread.run_sync(page.is_file):
            response = Response(NOT_BUILT, status=503, content_type="text/html; charset=utf-8")
        else:
            text = await trio.to_thread.run_sync(page.read_bytes)
            response = Response(text, status=200, content_type="text/html; charset=utf-8")
        response.headers["Cache-Control"] = "no-cache"  # new builds show at once
        return page_headers(response)

    @blueprint.get("/")
    async def home() -> Response:
        return await index()

    # Only the console's own pages match, so /api/v1/... keeps its 404s and 405s.
    pages = f"<any({', '.join(CONSOLE_PAGES)}):page>"

    @blueprint.get(f"/{pages}")
    @blueprint.get(f"/{pages}/<path:rest>")
    async def deep_link(page: str, rest: str = "") -> Response:
        return await index()

    async def static_file(name: str, max_age: int) -> Response:
        """A built file, with Quart's safe join, ETag and conditional answers (304)."""
        response = await send_from_directory(str(root), name, cache_timeout=max_age or None)
        if max_age:
            response.headers["Cache-Control"] = f"public, max-age={max_age}, immutable"
        else:
            response.headers["Cache-Control"] = "no-cache"
        return page_headers(response)

    gzipped: dict[str, tuple[bytes, str]] = {}  # asset name -> (gzip body, its ETag)

    async def compressed(name: str) -> tuple[bytes, str] | None:
        if name not in gzipped:
            path = safe_join(str(root), "assets", name)
            if path is None:
                return None
            try:
                raw = await trio.to_thread.run_sync(_read, path)
            except OSError:  # missing, or a directory: the plain path answers 404
                return None
            body = await trio.to_thread.run_sync(gzip.compress, raw, 6)
            gzipped[name] = (body, f'"{name}.gz"')  # the name holds the content's hash
        return gzipped[name]

    @blueprint.get("/assets/<path:name>")
    async def asset(name: str) -> Response:
        if name.endswith(COMPRESSIBLE) and request.accept_encodings.quality("gzip") > 0:
            found = await compressed(name)
            if found is not None:
                body, etag = found
                if etag in request.headers.get("If-None-Match", ""):
                    response = Response(b"", status=304)
                else:
                    kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
                    response = Response(body, content_type=kind)
                    response.headers["Content-Encoding"] = "gzip"
                response.headers["ETag"] = etag
                response.headers["Vary"] = "Accept-Encoding"
                response.headers["Cache-Control"] = f"public, max-age={ASSET_MAX_AGE}, immutable"
                return page_headers(response)
        response = await static_file(f"assets/{name}", ASSET_MAX_AGE)
        if name.endswith(COMPRESSIBLE):
            response.headers["Vary"] = "Accept-Encoding"
        return response

    @blueprint.get("/favicon.svg")
    async def favicon() -> Response:
        return await static_file("favicon.svg", 0)

    return blueprint


def _read(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read()
