"""The core: one metered call, the same for every front door.

    plan     the model name -> its targets (an alias's, or one provider and model)
    prepare  the request each target needs, in the router's types or relayed; checked here,
             before any upstream is tried
    admit    the caller's key may use the model, and its limits can take the request (reserve;
             a free call, token counting, takes nothing from them and costs nothing)
    execute  the targets in the plan's order, retried and failed over (policy/executor.py)
    settle   the real usage replaces the reservation; the answer carries its cost

Front doors build a `Call` (call.py), make it with `Router.call`, and render the `Answer`
(answers.py) or the RouterError in their wire format. The core imports neither flask nor grpc.
"""

from __future__ import annotations

import importlib
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from functools import partial

from ai_router import wire
from ai_router.access.gate import Gate, Meter
from ai_router.access.keys import Keyring
from ai_router.access.settings import KeySettings
from ai_router.answers import (
    Account,
    Answer,
    ChatStream,
    Completion,
    Relayed,
    RelayedStream,
    json_of,
)
from ai_router.call import Call
from ai_router.config import Settings
from ai_router.errors import InvalidRequest, NotFound
from ai_router.metrics import Metrics
from ai_router.policy.cooldown import Cooldowns
from ai_router.policy.executor import Executor, Plan, Target
from ai_router.policy.stats import Lease, TargetStats
from ai_router.providers.base import Provider, RelayRequest
from ai_router.providers.registry import PROVIDER_TYPES
from ai_router.providers.transport import TransportFactory
from ai_router.response_store import ResponseStore, open_response_store
from ai_router.types import ChatRequest, ChatResponse, Usage
from ai_router.upstream_watch import Watchdog


class Router:
    def __init__(
        self,
        settings: Settings,
        providers: Mapping[str, Provider],
        metrics: Metrics | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """`rng` orders weighted targets: a seeded one makes a test repeatable."""
        self._settings = settings
        self._providers = dict(providers)
        self.metrics = metrics or Metrics(settings)
        self.gate = Gate(settings)
        # State per target only for those the config names, so that it is bounded by the config
        # and not by the model names clients send (a provider without `models:` takes any).
        named = settings.named_targets()
        self.executor = Executor(
            Cooldowns(settings.cooldown, named), TargetStats(named), self.metrics, rng
        )
        self.watchdog = Watchdog()
        self._responses: ResponseStore | None = None
        self._responses_lock = threading.Lock()
        self._holds = 0  # requests using this router now (see `hold`)
        self._retired = False
        self._closed = False
        self._life = threading.Lock()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        metrics: Metrics | None = None,
        connect: TransportFactory | None = None,
    ) -> Router:
        """The router of `settings`; `connect` makes the providers' transports (default: real
        connection pools; a fake upstream in tests)."""
        return cls(settings, build_providers(settings, connect), metrics)

    @property
    def providers(self) -> Mapping[str, Provider]:
        return self._providers

    @property
    def settings(self) -> Settings:
        return self._settings

    # --- the call ------------------------------------------------------------------------------

    def call(
        self, call: Call, caller: KeySettings | None = None, account: Account | None = None
    ) -> Answer:
        """Answer `call` for `caller` (None: keys are off). `account` is filled in as the call
        goes, failures included; the answer carries it."""
        account = account or Account()
        plan = self.plan(call.model, call.provider)
        if plan.is_alias:
            account.alias = plan.name
        self.gate.authorize(caller, plan.full_name)
        prepared = self._prepare(call, plan)
        meter = None
        if not call.free:
            meter = self.gate.reserve(caller, plan, call.input_tokens, call.max_output)
        if caller is not None:
            account.key = caller.name
        attempt = partial(self._attempt, call, prepared, account)
        try:
            answer = self.executor.run(plan, attempt, call.timeout, account)
        except BaseException:
            if meter is not None:
                meter.settle("", "", None)
            raise
        if meter is None:
            account.settled(None, 0.0)
        else:
            self._settle(answer, meter, call.input_tokens)
        return answer

    def complete(
        self, request: ChatRequest, caller: KeySettings | None = None, account: Account | None = None
    ) -> ChatResponse:
        """`call` for a whole answer to a request in the router's types."""
        answer = self.call(Call.of(request, stream=False), caller, account)
        assert isinstance(answer, Completion)  # nothing is relayed to a request of our types
        return answer.response

    def stream(
        self, request: ChatRequest, caller: KeySettings | None = None, account: Account | None = None
    ) -> ChatStream:
        """`call` for a stream: retried and failed over until its first chunk arrives, which
        the stream yields first; after that, never. Settled when it closes."""
        answer = self.call(Call.of(request, stream=True), caller, account)
        assert isinstance(answer, ChatStream)
        return answer

    def _prepare(self, call: Call, plan: Plan) -> dict[str, ChatRequest]:
        """The request in the router's types for each target of the plan that is not relayed
        (by target key), checked by its provider with the target's model (what a model takes
        can differ within one provider: Bedrock's), as a body relayed is checked too."""
        prepared: dict[str, ChatRequest] = {}
        converted: dict[str, ChatRequest] = {}  # by provider: the conversion is the provider's
        for target in plan.targets:
            name = target.provider.name
            if _relayed(call, target):
                assert call.relay is not None
                target.provider.check_relay(call.relay)
                continue
            if name not in converted:
                converted[name] = call.chat(name)
            request = self._for_target(converted[name], target, target.timeout)
            target.provider.check(request)
            prepared[target.key] = request
        return prepared

    def _attempt(
        self,
        call: Call,
        prepared: Mapping[str, ChatRequest],
        account: Account,
        target: Target,
        timeout: float,
        lease: Lease,
    ) -> Answer:
        """One attempt on `target`, up to the point where bytes may reach the client: a whole
        answer, or a stream's first chunk (relayed: the upstream's head)."""
        if _relayed(call, target):
            return self._relay_on(call, target, timeout, lease, account)
        request = prepared[target.key]
        if timeout != request.timeout:  # a caller's deadline is nearer than the target's timeout
            request = replace(request, timeout=timeout)
        if not call.stream:
            return Completion(target.provider.complete(request), account)
        watch = self.watchdog.watch()
        chunks = iter(target.provider.stream(request, watch))
        try:
            first = next(chunks)
        except BaseException:
            getattr(chunks, "close", lambda: None)()
            raise
        account.first_token()
        lease.keep()
        stream = ChatStream(request, first, chunks, watch, account)
        stream.on_close(lease.release)
        return stream

    def _relay_on(
        self, call: Call, target: Target, timeout: float, lease: Lease, account: Account
    ) -> Relayed | RelayedStream:
        assert call.relay is not None
        body = {**call.relay.body, "model": target.model}
        watch = self.watchdog.watch()
        request = RelayRequest(body, call.stream, timeout, call.request_id, call.relay.endpoint)
        relay = target.provider.relay(request, watch)
        if not call.stream:
            try:
                content = b"".join(relay.chunks)
            finally:
                relay.close()
            counts = wire.relayed_format(call.relay.family, call.relay.endpoint).usage_counts(json_of(content))
            return Relayed(relay.status, relay.content_type, content, counts, account)
        lease.keep()
        stream = RelayedStream(
            relay.status, relay.content_type, relay.chunks, relay.close, watch,
            wire.relayed_format(call.relay.family, call.relay.endpoint), account,
        )  # fmt: skip
        stream.on_close(lease.release)
        return stream

    def _settle(self, answer: Answer, meter: Meter, input_tokens: int) -> None:
        account = answer.account

        def settle(provider: str, model: str, usage: Usage) -> None:
            account.settled(usage, meter.settle(provider, model, usage))

        if isinstance(answer, Completion):
            response = answer.response
            settle(response.provider, response.model, response.usage)
        elif isinstance(answer, Relayed):
            settle(account.provider, account.model, _billed(answer.usage_counts, input_tokens, 0))
        elif isinstance(answer, ChatStream):
            stream = answer

            def settle_stream() -> None:
                usage = stream.usage or Usage(input_tokens, stream.relayed_tokens)
                settle(stream.request.provider, stream.request.model, usage)

            stream.on_close(settle_stream)
        else:
            relayed = answer
            relayed.on_close(
                lambda: settle(
                    account.provider,
                    account.model,
                    _billed(relayed.usage_counts, input_tokens, relayed.pieces),
                )
            )

    # --- names ---------------------------------------------------------------------------------

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
        """Every model a client can name: each provider's listed models (or its default model
        when it lists none; it then accepts any model id) as provider/model, then the aliases."""
        direct = [
            f"{name}/{model}"
            for name, provider in self._providers.items()
            for model in provider.settings.models or (provider.settings.default_model,)
        ]
        return direct + list(self._settings.models)

    # --- for the request scope -------------------------------------------------------------------

    def model_names_for(self, caller: KeySettings | None) -> list[str]:
        """The model names `caller` may use."""
        return [name for name in self.model_names() if Keyring.allows(caller, name)]

    def authenticate(self, presented: str | None) -> KeySettings | None:
        """The caller's key settings; None when no keys are configured. Raises Unauthenticated."""
        return self.gate.keyring.authenticate(presented)

    @property
    def keyed(self) -> bool:
        """Whether requests must carry a router key."""
        return self.gate.keyring.enabled

    def record_usage(self, records: Sequence[Mapping[str, object]]) -> None:
        """Append finished requests' records to the usage log, when one is configured."""
        self.gate.record_usage(records)

    def readiness(self) -> dict[str, str | None]:
        """Each provider's reason for being unusable, or None when it is usable."""
        return {name: provider.unavailable_reason() for name, provider in self._providers.items()}

    def state_problem(self) -> str | None:
        """Why the store of keys' limits and budgets is unusable now, or None."""
        return self.gate.state_problem()

    def response_store(self) -> ResponseStore:
        """The Responses API's stored responses (response_store/), opened on first use, in
        the process that uses it (after any fork); closed with this router."""
        with self._responses_lock:
            if self._closed:
                raise RuntimeError("this router is closed: hold it before it is retired")
            if self._responses is None:
                settings = self._settings
                self._responses = open_response_store(settings.state, settings.responses)
            return self._responses

    # --- its life: held by each request, closed by the last one once a reload retired it -------

    def hold(self) -> Callable[[], None]:
        """Keep this router open for one request; returns the release (idempotent)."""
        with self._life:
            if self._closed:  # a front door took a router that its reload had closed already
                raise RuntimeError("this router is closed: hold it before it is retired")
            self._holds += 1
        released = False

        def release() -> None:
            nonlocal released
            with self._life:
                if released:
                    return
                released = True
                self._holds -= 1
                last = self._retired and self._holds == 0
            if last:
                self.close()

        return release

    def retire(self) -> None:
        """A reload replaced this router: no request will take it any more, and it is closed
        as soon as none holds it."""
        with self._life:
            self._retired = True
            idle = self._holds == 0
        if idle:
            self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Release its connections, its store and the watchdog's thread. Once only."""
        with self._life:
            if self._closed:
                return
            self._closed = True
        for provider in self._providers.values():
            provider.close()
        self.gate.close()
        with self._responses_lock:
            if self._responses is not None:
                self._responses.close()
        self.watchdog.close()

    # --- helpers -------------------------------------------------------------------------------

    @staticmethod
    def _target(
        provider: Provider,
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


def build_providers(
    settings: Settings, connect: TransportFactory | None = None
) -> dict[str, Provider]:
    """A provider per configured one, of its registered type (providers/registry.py)."""
    providers: dict[str, Provider] = {}
    for name, provider_settings in settings.providers.items():
        module_name, _, class_name = PROVIDER_TYPES[provider_settings.type].partition(":")
        provider_type = getattr(importlib.import_module(module_name), class_name)
        extra = {} if connect is None else {"connect": connect}
        providers[name] = provider_type(provider_settings, **extra)
    return providers


def _relayed(call: Call, target: Target) -> bool:
    return call.relay is not None and target.provider.family == call.relay.family


def _billed(counts: tuple[int | None, int | None] | None, input_tokens: int, pieces: int) -> Usage:
    """What a relayed answer is billed at: the upstream's counts where it gave them; else the
    input estimate, and for output the content pieces relayed (about one token each)."""
    known_in, known_out = counts or (None, None)
    return Usage(input_tokens if known_in is None else known_in, max(known_out or 0, pieces))
