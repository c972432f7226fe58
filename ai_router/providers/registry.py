"""Provider types, registered by data: a config `type:` names an entry here.

Entries are import paths, so reading the config (which the gunicorn master does) never imports a
provider SDK. Adding a provider is one new module in this package and one line here.
"""

from __future__ import annotations

PROVIDER_TYPES: dict[str, str] = {
    "openai": "ai_router.providers.openai_provider:OpenAIProvider",
    "anthropic": "ai_router.providers.anthropic_provider:AnthropicProvider",
    "gemini": "ai_router.providers.gemini_provider:GeminiProvider",
    "azure": "ai_router.providers.azure_provider:AzureOpenAIProvider",
    "bedrock": "ai_router.providers.bedrock_provider:BedrockProvider",
}
