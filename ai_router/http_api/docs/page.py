"""The OpenAPI document as one plain HTML page (GET /docs), rendered on the server.

No script and nothing fetched from elsewhere (the machines may have no internet): each endpoint
with its summary, parameters, request body and responses, then every schema pretty-printed, with
each `$ref` a link to the schema it names.
"""

from __future__ import annotations

import json
import re
from html import escape
from typing import Any

_SCHEMA_PREFIX = "#/components/schemas/"
_REF = re.compile(r"&quot;#/components/schemas/([A-Za-z0-9_.\-]+)&quot;")
_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem;
       color: #1d1d1f; }
code, pre { font: 13px/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; }
pre { background: #f5f5f7; padding: .75rem; overflow-x: auto; border-radius: 4px; }
section.operation { border-top: 1px solid #d2d2d7; margin-top: 1.5rem; }
.method { display: inline-block; min-width: 3.5rem; font-weight: 700; text-transform: uppercase; }
.post { color: #0b7a2f; } .get { color: #0a5bd3; }
table { border-collapse: collapse; margin: .5rem 0; }
th, td { text-align: left; vertical-align: top; padding: .25rem .75rem .25rem 0; }
nav li { list-style: none; }
"""


def render(document: dict[str, Any]) -> str:
    info = document["info"]
    title = f"{info['title']} {info['version']}: HTTP API"
    operations = [
        (path, method, operation)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    ]
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f"<p>{escape(info.get('summary', ''))}</p>",
        f"<p>{_text(info.get('description', ''))}</p>",
        '<p>The same document as JSON: <a href="/openapi.json">/openapi.json</a> (OpenAPI '
        f"{escape(document['openapi'])}).</p>",
        "<nav><h2>Endpoints</h2><ul>",
    ]
    for path, method, operation in operations:
        parts.append(
            f'<li><a href="#{_anchor(operation)}"><span class="method {method}">{method}</span> '
            f"<code>{escape(path)}</code></a> {escape(operation.get('summary', ''))}</li>"
        )
    parts.append('<li><a href="#schemas">Schemas</a></li></ul></nav>')
    for path, method, operation in operations:
        parts.extend(_operation(path, method, operation, document))
    parts.append('<h2 id="schemas">Schemas</h2>')
    for name, schema in document.get("components", {}).get("schemas", {}).items():
        parts.append(f'<h3 id="schema-{escape(name)}">{escape(name)}</h3>')
        parts.append(_pretty(schema))
    parts.append("</body></html>")
    return "\n".join(parts)


def _operation(
    path: str, method: str, operation: dict[str, Any], document: dict[str, Any]
) -> list[str]:
    parts = [
        f'<section class="operation" id="{_anchor(operation)}">',
        f'<h2><span class="method {method}">{method}</span> <code>{escape(path)}</code></h2>',
        f"<p><strong>{escape(operation.get('summary', ''))}</strong></p>",
    ]
    if "description" in operation:
        parts.append(f"<p>{_text(operation['description'])}</p>")
    if "security" in operation:
        schemes = [" and ".join(requirement) or "none" for requirement in operation["security"]]
        parts.append(f"<p>Authentication: {escape(' or '.join(schemes))}</p>")
    if operation.get("parameters"):
        parts.append("<h3>Parameters</h3><table><tr><th>name</th><th>in</th><th>required</th>"
                     "<th>description</th></tr>")
        for parameter in operation["parameters"]:
            parts.append(
                f"<tr><td><code>{escape(parameter['name'])}</code></td>"
                f"<td>{escape(parameter['in'])}</td>"
                f"<td>{'yes' if parameter.get('required') else 'no'}</td>"
                f"<td>{_text(parameter.get('description', ''))}</td></tr>"
            )
        parts.append("</table>")
    schemas = document.get("components", {}).get("schemas", {})
    if "requestBody" in operation:
        parts.append("<h3>Request body</h3>")
        parts.extend(_content(operation["requestBody"]["content"], schemas))
    parts.append("<h3>Responses</h3>")
    for status, response in operation["responses"].items():
        parts.append(f"<h4><code>{escape(status)}</code> {_text(response['description'])}</h4>")
        headers = response.get("headers", {})
        if headers:
            names = ", ".join(f"<code>{escape(name)}</code>" for name in headers)
            parts.append(f"<p>Headers: {names}</p>")
        # Answers inline (errors share one schema a family: a link is enough).
        inline = schemas if status.startswith("2") else {}
        parts.extend(_content(response.get("content", {}), inline))
    parts.append("</section>")
    return parts


def _content(content: dict[str, Any], inline: dict[str, Any]) -> list[str]:
    """Each media type and its schema: a link to the component, and the component itself,
    pretty-printed, when it is in `inline`."""
    parts = []
    for media_type, media in content.items():
        schema = media.get("schema", {})
        ref = schema.get("$ref", "")
        if ref.startswith(_SCHEMA_PREFIX):
            name = ref.removeprefix(_SCHEMA_PREFIX)
            link = f'<a href="#schema-{escape(name)}">{escape(name)}</a>'
            parts.append(f"<p><code>{escape(media_type)}</code>: {link}</p>")
            if name in inline:
                parts.append(f"<details><summary>{escape(name)}</summary>")
                parts.append(_pretty(inline[name]) + "</details>")
        else:
            parts.append(f"<p><code>{escape(media_type)}</code></p>")
            parts.append(_pretty(schema))
    return parts


def _pretty(schema: Any) -> str:
    """Pretty-printed JSON, each $ref to a component a link to it."""
    text = escape(json.dumps(schema, indent=2, ensure_ascii=False))
    linked = _REF.sub(lambda m: f'<a href="#schema-{m.group(1)}">{m.group(0)}</a>', text)
    return f"<pre>{linked}</pre>"


def _text(text: str) -> str:
    """Prose from the document: escaped, with `code` spans."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escape(text))


def _anchor(operation: dict[str, Any]) -> str:
    return "op-" + escape(str(operation.get("operationId", "")))
