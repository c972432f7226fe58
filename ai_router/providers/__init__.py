"""Provider types, registered by data: a config `type:` names an entry here.

Entries are import paths, so reading the config (which the gunicorn master does) never imports a
provider SDK. Adding a provider is one new module in this package and one line here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ai_router.providers.base import AnyProvider

PROVIDER_TYPES: dict[str, str] = {
    "openai": "ai_router.providers.openai:OpenAIProvider",
    "anthropic": "ai_router.providers.anthropic:AnthropicProvider",
}


def provider_class(type_name: str) -> type[AnyProvider]:
    module_name, _, class_name = PROVIDER_TYPES[type_name].partition(":")
    provider_type: type[AnyProvider] = getattr(importlib.import_module(module_name), class_name)
    return provider_type
