"""What a request costs: usage times the price of the model that answered.

Defaults are the providers' list prices (USD per million tokens) for current models; config's
`prices:` adds models and overrides these. A model with no price costs 0, and is logged once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from ai_router.access.settings import Price
from ai_router.types import Usage

log = logging.getLogger(__name__)

DEFAULT_PRICES: dict[str, Price] = {
    "openai/gpt-4o": Price(input=2.5, output=10.0, cached_input=1.25),
    "openai/gpt-4o-mini": Price(input=0.15, output=0.6, cached_input=0.075),
    "openai/gpt-4.1": Price(input=2.0, output=8.0, cached_input=0.5),
    "openai/gpt-4.1-mini": Price(input=0.4, output=1.6, cached_input=0.1),
    "openai/gpt-4.1-nano": Price(input=0.1, output=0.4, cached_input=0.025),
    "openai/o3": Price(input=2.0, output=8.0, cached_input=0.5),
    "openai/o4-mini": Price(input=1.1, output=4.4, cached_input=0.275),
    # Embeddings: billed by input tokens alone.
    "openai/text-embedding-3-small": Price(input=0.02, output=0.0),
    "openai/text-embedding-3-large": Price(input=0.13, output=0.0),
    "openai/text-embedding-ada-002": Price(input=0.1, output=0.0),
    "anthropic/claude-3-5-haiku-20241022": Price(input=0.8, output=4.0, cached_input=0.08),
    "anthropic/claude-3-5-sonnet-20240620": Price(input=3.0, output=15.0, cached_input=0.3),
    "anthropic/claude-3-7-sonnet-20250219": Price(input=3.0, output=15.0, cached_input=0.3),
    "anthropic/claude-sonnet-4-20250514": Price(input=3.0, output=15.0, cached_input=0.3),
    "anthropic/claude-opus-4-20250514": Price(input=15.0, output=75.0, cached_input=1.5),
    "anthropic/claude-3-opus-20240229": Price(input=15.0, output=75.0, cached_input=1.5),
    "anthropic/claude-3-haiku-20240307": Price(input=0.25, output=1.25, cached_input=0.03),
    # Google's standard paid tier, from ai.google.dev/gemini-api/docs/pricing as pages quoting it
    # (2026-03 to 2026-07) gave it, checked 2026-12-03: text/image/video input; thinking is
    # billed as output. The Pro models cost more above 200k prompt tokens, which one price per
    # model cannot say: this is the price up to it.
    "gemini/gemini-3.1-pro-preview": Price(input=2.0, output=12.0, cached_input=0.2),
    "gemini/gemini-3-flash-preview": Price(input=0.5, output=3.0, cached_input=0.05),
    "gemini/gemini-2.5-pro": Price(input=1.25, output=10.0, cached_input=0.125),
    "gemini/gemini-2.5-flash": Price(input=0.3, output=2.5, cached_input=0.03),
    "gemini/gemini-2.5-flash-lite": Price(input=0.1, output=0.4, cached_input=0.01),
    "gemini/gemini-2.0-flash": Price(input=0.1, output=0.4, cached_input=0.025),
}
# Azure OpenAI's Global Standard deployments are billed at OpenAI's list prices, model for model
# (Azure's pricing page, as cost guides of 2026 report it); Data Zone, Regional and provisioned
# deployments are not: set theirs in `prices:` as `<provider>/<model>`.
DEFAULT_PRICES.update(
    {f"azure/{name.removeprefix('openai/')}": price for name, price in DEFAULT_PRICES.items()
     if name.startswith("openai/")}
)
# Amazon Bedrock's on-demand prices (aws.amazon.com/bedrock/pricing, us-east-1, as pages quoting it
# in 2026 give it; checked 2026-12-03): Claude at Anthropic's own list prices, Amazon Nova.
# Cross-region inference profiles (`us.`, `eu.`, ... `global.`) cost what the source region
# charges, so each model is listed under its profiles too. Llama is left out: the pages quoting it
# disagree; set it in `prices:` as `bedrock/<model id>`.
_BEDROCK_PRICES: dict[str, Price] = {
    "anthropic.claude-3-5-haiku-20241022-v1:0": DEFAULT_PRICES["anthropic/claude-3-5-haiku-20241022"],
    "anthropic.claude-3-5-sonnet-20240620-v1:0": DEFAULT_PRICES["anthropic/claude-3-5-sonnet-20240620"],
    "anthropic.claude-3-5-sonnet-20241022-v2:0": DEFAULT_PRICES["anthropic/claude-3-5-sonnet-20240620"],
    "anthropic.claude-3-7-sonnet-20250219-v1:0": DEFAULT_PRICES["anthropic/claude-3-7-sonnet-20250219"],
    "anthropic.claude-sonnet-4-20250514-v1:0": DEFAULT_PRICES["anthropic/claude-sonnet-4-20250514"],
    "anthropic.claude-opus-4-20250514-v1:0": DEFAULT_PRICES["anthropic/claude-opus-4-20250514"],
    "anthropic.claude-3-haiku-20240307-v1:0": DEFAULT_PRICES["anthropic/claude-3-haiku-20240307"],
    # Anthropic's list prices for the 4.5 and 4.6 generation (Haiku 4.5, Sonnet 4.5 and 4.6, Opus
    # 4.5 and 4.6), which Bedrock charges as Anthropic does.
    "anthropic.claude-haiku-4-5-20251001-v1:0": Price(input=1.0, output=5.0, cached_input=0.1),
    "anthropic.claude-sonnet-4-5-20250929-v1:0": Price(input=3.0, output=15.0, cached_input=0.3),
    "anthropic.claude-sonnet-4-6": Price(input=3.0, output=15.0, cached_input=0.3),
    "anthropic.claude-opus-4-5-20251101-v1:0": Price(input=5.0, output=25.0, cached_input=0.5),
    "anthropic.claude-opus-4-6-v1": Price(input=5.0, output=25.0, cached_input=0.5),
    "amazon.nova-pro-v1:0": Price(input=0.8, output=3.2, cached_input=0.2),
    "amazon.nova-lite-v1:0": Price(input=0.06, output=0.24, cached_input=0.015),
    "amazon.nova-micro-v1:0": Price(input=0.035, output=0.14, cached_input=0.00875),
}
DEFAULT_PRICES.update(
    {f"bedrock/{profile}{model}": price for model, price in _BEDROCK_PRICES.items()
     for profile in ("", "us.", "eu.", "apac.", "global.")}
)
PER_TOKEN = 1e-6
MAX_UNPRICED_WARNINGS = 1000


class PriceTable:
    def __init__(self, configured: Mapping[str, Price]) -> None:
        self._prices = {**DEFAULT_PRICES, **configured}
        # Warned about once each; bounded, since a provider without `models:` takes any name.
        self._unpriced: set[str] = set()

    def price(self, provider: str, provider_type: str, model: str) -> Price | None:
        """By the provider's name first (config), then its type (the built-in table)."""
        return self._prices.get(f"{provider}/{model}") or self._prices.get(f"{provider_type}/{model}")

    def cost(self, provider: str, provider_type: str, model: str, usage: Usage) -> float:
        price = self.price(provider, provider_type, model)
        if price is None:
            name = f"{provider}/{model}"
            if name not in self._unpriced and len(self._unpriced) < MAX_UNPRICED_WARNINGS:
                self._unpriced.add(name)
                log.warning("no price for %s: its requests cost 0", name)
            return 0.0
        return (usage.input_tokens * price.input + usage.output_tokens * price.output) * PER_TOKEN


def format_usd(cost: float) -> str:
    """A cost for a header or metadata: plain decimal, no exponent, no trailing zeros."""
    return f"{cost:.10f}".rstrip("0").rstrip(".") or "0"
