"""The core: resolve a model name to a plan of targets, then run the call under the policy.

Front doors build a ChatRequest, call `Router.complete()` or `Router.stream()`, and translate the
result or the RouterError back into their wire format. The /v1 endpoints, which may relay a body
unparsed, call `Router.plan()` and `Router.execute()` with an attempt of their own. The router
imports neither flask nor grpc.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from functools import partial

from ai_router import observe
from ai_router.access.gate import Gate, estimate_tokens
from ai_router.access.settings import KeySettings
from ai_router.config import Settings
from ai_router.metrics import Metrics
from ai_router.errors import InvalidRequest, NotFound
from ai_router.policy.cooldown import Cooldowns
from ai_router.policy.executor import Attempt, Executor, Plan, Result, Target
from ai_router.policy.stats import Lease, TargetStats
from ai_router.providers import provider_class
from ai_router.providers.base import AnyProvider
from ai_router.types import ChatChunk, ChatRequest, ChatResponse, Usage
from ai_router.watchdog import Watch, Watchdog


class ChatStream:
    """A stream of chunks and the resolved request it answers (provider, model filled in).
    Its first chunk has already arrived. Closing it, or reading it to the end, closes the
    upstream response and ends its lease on the target."""

    def __init__(
        self,
        request: ChatRequest,
        first: ChatChunk,
        rest: Iterator[ChatChunk],
        on_close: Callable[[], None],
        watch: Watch,
        record: observe.RequestRecord | None = None,
    ) -> None:
        self.request = request
        self._record = record  # reading may happen outside the request's context: keep it
        self._first: ChatChunk | None = first
        self._rest = rest
        self._on_close = on_close
        self._watch = watch
        self._closed = False
        self._lock = threading.Lock()
        self.relayed_tokens = 0  # text and tool-call pieces read so far, about one token each
        self.usage: Usage | None = None

    def on_close(self, callback: Callable[[], None]) -> None:
        """Run `callback` too once the stream is closed."""
        previous = self._on_close

        def both() -> None:
            try:
                previous()
            finally:
                callback()

        self._on_close = both

    def __iter__(self) -> Iterator[ChatChunk]:
        return self

    def __next__(self) -> ChatChunk:
        first, self._first = self._first, None
        if first is not None:
            return self._count(first)
        try:
            chunk = next(self._rest)
        except BaseException:
            self.close()
            raise
        return self._count(chunk)

    def _count(self, chunk: ChatChunk) -> ChatChunk:
        if chunk.delta or chunk.tool_call is not None:
            self.relayed_tokens += 1
        if chunk.usage is not None:
            self.usage = chunk.usage
            if self._record is not None:
                self._record.usage = chunk.usage
        return chunk

    def abort(self) -> None:
        """Cut the upstream off now, from any thread, even while another is reading it (the
        client went away); the reader then sees the stream end with Cancelled."""
        self._watch.cancel()

    def close(self) -> None:
        """Stop early, from the thread reading: closes the upstream response. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            close = getattr(self._rest, "close", None)
            if close is not None:
                close()
        finally:
            self._on_close()


class Router:
    def __init__(
        self,
        settings: Settings,
        providers: Mapping[str, AnyProvider],
        metrics: Metrics | None = None,
    ) -> None:
        self._settings = settings
        self._providers = dict(providers)
        self.metrics = metrics or Metrics(settings)
        self.gate = Gate(settings)
        self.executor = Executor(Cooldowns(settings.cooldown), TargetStats(), self.metrics)
        self.watchdog = Watchdog()

    @classmethod
    def from_settings(cls, settings: Settings, metrics: Metrics | None = None) -> Router:
        providers = {
            name: provider_class(provider.type)(provider)
            for name, provider in settings.providers.items()
        }
        return cls(settings, providers, metrics)

    @property
    def providers(self) -> Mapping[str, AnyProvider]:
        return self._providers

    @property
    def settings(self) -> Settings:
        return self._settings

    def complete(self, request: ChatRequest, caller: KeySettings | None = None) -> ChatResponse:
        plan = self.plan(request.model, request.provider)
        meter = self.gate.admit(caller, plan, estimate_tokens(request), request.max_tokens)
        try:
            response = self.execute(plan, partial(self.complete_on, request), request.timeout)
        except BaseException:
            meter.settle("", "", None)
            raise
        cost = meter.settle(response.provider, response.model, response.usage)
        _note_cost(cost)
        return response

    def stream(self, request: ChatRequest, caller: KeySettings | None = None) -> ChatStream:
        """Open a stream: the call is retried and failed over until its first chunk arrives,
        which the returned stream yields first; after that, never. The key's reservation is
        settled when the stream closes, with the usage relayed until then."""
        plan = self.plan(request.model, request.provider)
        input_tokens = estimate_tokens(request)
        meter = self.gate.admit(caller, plan, input_tokens, request.max_tokens)
        try:
            stream = self.execute(plan, partial(self.stream_on, request), request.timeout)
        except BaseException:
            meter.settle("", "", None)
            raise

        def settle() -> None:
            usage = stream.usage or Usage(input_tokens, stream.relayed_tokens)
            _note_cost(meter.settle(stream.request.provider, stream.request.model, usage), record)

        record = observe.current()
        stream.on_close(settle)
        return stream

    def complete_on(
        self, request: ChatRequest, target: Target, timeout: float, lease: Lease
    ) -> ChatResponse:
        """One attempt at a whole answer from `target`."""
        response = target.provider.complete(self._for_target(request, target, timeout))
        record = observe.current()
        if record is not None:
            record.usage = response.usage
        return response

    def stream_on(
        self, request: ChatRequest, target: Target, timeout: float, lease: Lease
    ) -> ChatStream:
        """One attempt at a stream from `target`, up to its first chunk; the stream then holds
        the lease until it closes."""
        resolved = self._for_target(request, target, timeout)
        watch = self.watchdog.watch()
        chunks = target.provider.stream(resolved, watch)
        try:
            first = next(chunks)
        except BaseException:
            chunks.close()
            raise
        record = observe.current()
        if record is not None:
            record.first_token()
        lease.keep()
        return ChatStream(resolved, first, chunks, lease.release, watch, record)

    def execute(self, plan: Plan, attempt: Attempt[Result], time_limit: float | None) -> Result:
        return self.executor.run(plan, attempt, time_limit)

    def plan(self, model: str, provider_name: str = "") -> Plan:
        """What a model name denotes: an alias's targets, or the one provider and model."""
        alias = self._settings.models.get(model) if not provider_name else None
        if alias is not None:
            targets = tuple(
                self._target(
                    self._providers[target.provider],
                    target.provider_model,
                    timeout=target.timeout,
                    max_retries=target.max_retries,
                    weight=target.weight,
                )
                for target in alias.targets
            )
            return Plan(model, targets, alias.strategy, is_alias=True)
        provider, upstream_model = self.target(model, provider_name)
        return Plan(model, (self._target(provider, upstream_model),))

    def target(self, model: str, provider_name: str = "") -> tuple[AnyProvider, str]:
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
        """Every model a client can name: each provider's listed models (or its default model
        when it lists none; it then accepts any model id) as provider/model, then the aliases."""
        direct = [
            f"{name}/{model}"
            for name, provider in self._providers.items()
            for model in provider.settings.models or (provider.settings.default_model,)
        ]
        return direct + list(self._settings.models)

    def readiness(self) -> dict[str, str | None]:
        """Each provider's reason for being unusable, or None when it is usable."""
        return {name: provider.unavailable_reason() for name, provider in self._providers.items()}

    def close(self) -> None:
        for provider in self._providers.values():
            provider.close()
        self.gate.close()

    @staticmethod
    def _target(
        provider: AnyProvider,
        model: str,
        timeout: float | None = None,
        max_retries: int | None = None,
        weight: float = 1.0,
    ) -> Target:
        settings = provider.settings
        return Target(
            provider,
            model,
            timeout=timeout or settings.timeout,
            max_retries=settings.max_retries if max_retries is None else max_retries,
            weight=weight,
        )

    @staticmethod
    def _for_target(request: ChatRequest, target: Target, timeout: float) -> ChatRequest:
        settings = target.provider.settings
        return replace(
            request,
            provider=target.provider.name,
            model=target.model,
            max_tokens=request.max_tokens or settings.default_max_tokens,
            timeout=timeout,
        )

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
                f"model {model!r} is neither an alias nor provider/model (providers: "
                f"{self._names()}); write it as provider/model, or set `provider`",
                param="model",
            )
        raise InvalidRequest(f"set `provider` (one of {self._names()}) or `model`", "provider")

    def _names(self) -> str:
        return ", ".join(self._providers)



def _note_cost(cost: float, record: observe.RequestRecord | None = None) -> None:
    record = record or observe.current()
    if record is not None:
        record.cost_usd = round(cost, 10)
