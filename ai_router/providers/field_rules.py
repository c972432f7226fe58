"""What one OpenAI-compatible server takes differently in a Chat Completions body, as its config
declares it (`unsupported`, `renamed`; docs/PROVIDERS.md): a field it does not take is refused
(InvalidRequest naming it) or dropped, a field it names otherwise is renamed.

A refused field whose value asks for nothing (null; the API's default where it has one, such
as `n: 1` or `parallel_tool_calls: true`; else false) is dropped instead: the client asked for
what the server does anyway. A field of each message is written
`messages[].name`. The same rules apply to a body the router built and to a client's body
relayed, so that what reaches the server never depends on which way the request came.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from ai_router.errors import InvalidRequest

Action = Literal["refuse", "drop"]
EACH = "[]."  # `messages[].name`: the field `name` of each item of `messages`
# Defaults of OpenAI's API other than false: a value equal to one asks for nothing.
_DEFAULTS: dict[str, object] = {"n": 1, "parallel_tool_calls": True}


class FieldRules:
    def __init__(
        self, provider: str, unsupported: Mapping[str, Action], renamed: Mapping[str, str]
    ) -> None:
        self.provider = provider
        self.unsupported = dict(unsupported)
        self.renamed = dict(renamed)

    def __bool__(self) -> bool:
        return bool(self.unsupported or self.renamed)

    def check(self, body: Mapping[str, Any]) -> None:
        """Raise InvalidRequest for the first refused field `body` uses."""
        for field, action in self.unsupported.items():
            if action == "refuse" and any(_asks(field, value) for value in _values(body, field)):
                raise InvalidRequest(
                    f"provider {self.provider!r} does not support `{field}`; "
                    "send the request without it, or to another provider",
                    field,
                )

    def apply(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """`body` as the server takes it: checked, its unsupported fields removed, its renamed
        fields renamed. `body` itself is left as it was."""
        self.check(body)
        out = dict(body)
        for field in self.unsupported:
            _remove(out, field)
        for old, new in self.renamed.items():
            if old in out:
                value = out.pop(old)
                out.setdefault(new, value)  # both given: the server's own name wins
        return out


def _values(body: Mapping[str, Any], field: str) -> list[Any]:
    parent, each, child = field.partition(EACH)
    if not each:
        return [body[field]] if field in body else []
    items = body.get(parent)
    if not isinstance(items, list):
        return []
    return [item[child] for item in items if isinstance(item, dict) and child in item]


def _asks(field: str, value: object) -> bool:
    leaf = field.rpartition(EACH)[2]
    if value is None:
        return False
    if leaf in _DEFAULTS:
        return value != _DEFAULTS[leaf]
    return value is not False


def _remove(body: dict[str, Any], field: str) -> None:
    parent, each, child = field.partition(EACH)
    if not each:
        body.pop(field, None)
        return
    items = body.get(parent)
    if isinstance(items, list) and any(isinstance(i, dict) and child in i for i in items):
        body[parent] = [
            {k: v for k, v in item.items() if k != child} if isinstance(item, dict) else item
            for item in items
        ]
