"""The core: resolve a request to a provider and model, then call the provider.

Front doors build a ChatRequest, call `Router.complete()` or `Router.stream()`, and translate the
result or the RouterError back into their wire format. The router imports neither flask nor grpc.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from ai_router.config import Settings
from ai_router.errors import InvalidRequest, NotFound
from ai_router.providers import provider_class
from ai_router.providers.base import Provider
from ai_router.types import ChatChunk, ChatRequest, ChatResponse


@dataclass(frozen=True, slots=True)
class ChatStream:
    """A stream of chunks and the resolved request it answers (provider, model filled in)."""

    request: ChatRequest
    chunks: Iterator[ChatChunk]

    def __iter__(self) -> Iterator[ChatChunk]:
        return self.chunks

    def close(self) -> None:
        """Stop early: closes the upstream response. Safe to call more than once."""
        close = getattr(self.chunks, "close", None)
        if close is not None:
            close()


class Router:
    def __init__(self, providers: Mapping[str, Provider]) -> None:
        self._providers = dict(providers)

    @classmethod
    def from_settings(cls, settings: Settings) -> Router:
        return cls(
            {
                name: provider_class(provider.type)(provider)
                for name, provider in settings.providers.items()
            }
        )

    @property
    def providers(self) -> Mapping[str, Provider]:
        return self._providers

    def complete(self, request: ChatRequest) -> ChatResponse:
        provider, resolved = self.resolve(request)
        return provider.complete(resolved)

    def stream(self, request: ChatRequest) -> ChatStream:
        """Resolve now (so a bad name fails before anything is sent), stream lazily: the upstream
        is called on the first `next()`, and closing the stream closes the upstream."""
        provider, resolved = self.resolve(request)
        return ChatStream(resolved, provider.stream(resolved))

    def resolve(self, request: ChatRequest) -> tuple[Provider, ChatRequest]:
        provider, model = self.target(request.model, request.provider)
        max_tokens = request.max_tokens or provider.settings.default_max_tokens
        return provider, request.with_target(provider.name, model, max_tokens)

    def target(self, model: str, provider_name: str = "") -> tuple[Provider, str]:
        """The provider and upstream model a model name (and optional provider name) denote."""
        provider_name, model = self._split_name(provider_name, model)
        provider = self._providers.get(provider_name)
        if provider is None:
            raise NotFound(
                f"unknown provider {provider_name!r}; configured providers: {self._names()}",
                param="provider",
            )
        settings = provider.settings
        model = model or settings.default_model
        if not settings.accepts_model(model):
            offered = ", ".join(settings.models or ())
            raise NotFound(
                f"model {model!r} is not offered by provider {provider_name!r}; offered: {offered}",
                param="model",
            )
        return provider, model

    def model_names(self) -> list[str]:
        """Every model a client can name, as provider/model: each provider's listed models, or
        its default model when it lists none (it then accepts any model id)."""
        return [
            f"{name}/{model}"
            for name, provider in self._providers.items()
            for model in provider.settings.models or (provider.settings.default_model,)
        ]

    def readiness(self) -> dict[str, str | None]:
        """Each provider's reason for being unusable, or None when it is usable."""
        return {name: provider.unavailable_reason() for name, provider in self._providers.items()}

    def close(self) -> None:
        for provider in self._providers.values():
            provider.close()

    def _split_name(self, provider: str, model: str) -> tuple[str, str]:
        # `provider/model` only when the prefix is a configured provider: OpenAI-compatible
        # servers have model ids with slashes of their own (`meta-llama/Llama-3.1-8B`).
        prefix, slash, rest = model.partition("/")
        if slash and prefix in self._providers:
            if provider and provider != prefix:
                raise InvalidRequest(
                    f"provider {provider!r} and model {model!r} name different providers",
                    param="model",
                )
            return prefix, rest
        if provider:
            return provider, model
        if model:
            raise NotFound(
                f"model {model!r} names no provider: write it as provider/model "
                f"(providers: {self._names()}), or set `provider`",
                param="model",
            )
        raise InvalidRequest(f"set `provider` (one of {self._names()}) or `model`", "provider")

    def _names(self) -> str:
        return ", ".join(self._providers)
