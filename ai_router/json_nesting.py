"""How deep a client's JSON may nest.

The router writes what it takes back out with orjson (to the upstream, into the store of
responses), and orjson refuses documents nested more than 254 levels: a client's document past
that would fail inside the router, as a fault of its own. So a client's document is bounded on
arrival, with room under orjson's limit for what the router wraps around it.
"""

from __future__ import annotations

from typing import Any

from ai_router.errors import InvalidRequest

MAX_NESTING = 128


def check_nesting(document: Any, what: str, param: str | None = None) -> None:
    """Raise InvalidRequest, naming `what`, if `document` nests objects or arrays more than
    MAX_NESTING deep."""
    if type(document) is not dict and type(document) is not list:
        return
    pending: list[tuple[Any, int]] = [(document, 1)]
    while pending:
        node, depth = pending.pop()
        if depth > MAX_NESTING:
            raise InvalidRequest(
                f"{what} nests objects and arrays more than {MAX_NESTING} levels deep", param=param
            )
        for child in node.values() if type(node) is dict else node:
            if type(child) is dict or type(child) is list:
                pending.append((child, depth + 1))
