"""docs/api.md: the admin API reference, rendered from the OpenAPI document.

The same ``build_document`` that ``GET /openapi.json`` serves, so the
reference lists exactly the routes the app has; ``make docs`` writes it and a
test fails while the committed copy is stale. The full schemas stay in
``/openapi.json`` and the interactive ``/docs``.
"""

from __future__ import annotations

from typing import Any

from agentvisor import __version__
from agentvisor.admin.errors import STATUS_BY_CODE
from agentvisor.admin.openapi import build_document

_METHODS = ("get", "post", "put", "patch", "delete")


def render() -> str:
    document = build_document(__version__, auth=True)
    parts = [
        "# Admin API reference\n",
        "<!-- Generated from agentvisor/admin/openapi/ by `make docs`; do not edit by hand. -->\n",
        document["info"]["description"],
        "The running daemon serves this API's OpenAPI document at `/openapi.json` and an\n"
        "interactive reference at `/docs`, with every request and answer schema.\n",
        _errors(),
    ]
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, item in document["paths"].items():
        for method in _METHODS:
            if method in item:
                operation = item[method]
                tag = (operation.get("tags") or ["Other"])[0]
                by_tag.setdefault(tag, []).append((method.upper(), path, operation))
    for tag, operations in by_tag.items():
        parts.append(f"## {tag}\n")
        for method, path, operation in operations:
            parts.append(_operation(method, path, operation))
    return "\n".join(parts)


def _errors() -> str:
    lines = ["## Error codes\n", "| code | HTTP status |", "| --- | --- |"]
    ordered = sorted(STATUS_BY_CODE.items(), key=lambda item: (item[1], item[0]))
    lines += [f"| `{code}` | {status} |" for code, status in ordered]
    return "\n".join(lines) + "\n"


def _operation(method: str, path: str, operation: dict[str, Any]) -> str:
    lines = [f"### `{method} {path}`", "", operation.get("summary", "")]
    parameters = operation.get("parameters", [])
    if parameters:
        lines += ["", "| parameter | in | type | meaning |", "| --- | --- | --- | --- |"]
        for p in parameters:
            kind = _schema_type(p.get("schema", {}))
            required = " (required)" if p.get("required") else ""
            lines.append(
                f"| `{p['name']}` | {p['in']} | {kind}{required} | {p.get('description', '')} |"
            )
    body = operation.get("requestBody")
    if body:
        schema = body.get("content", {}).get("application/json", {}).get("schema", {})
        lines += ["", f"Body: {_schema_type(schema)}."]
    codes = ", ".join(operation.get("responses", {}))
    lines += ["", f"Answers: {codes}.", ""]
    return "\n".join(lines)


def _schema_type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return f"`{schema['$ref'].rsplit('/', 1)[-1]}`"
    if "enum" in schema:
        return " \\| ".join(f"`{value}`" for value in schema["enum"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"array of {_schema_type(schema.get('items', {}))}"
    if isinstance(kind, list):
        return " or ".join(str(k) for k in kind)
    return str(kind)


if __name__ == "__main__":
    print(render(), end="")
