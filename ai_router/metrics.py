"""Prometheus metrics, in Prometheus conventions (`ai_router_` prefix, `_total`, `_seconds`).

Label values are bounded: providers, aliases and models come from config, and a model the
config does not name is counted as "other", so a client cannot grow the series without limit.

gunicorn's workers each keep their own values in files under PROMETHEUS_MULTIPROC_DIR
(prometheus_client's multiprocess mode, set up in gunicorn.conf.py), and /metrics adds them up;
under `ai-router serve` the gRPC server writes its values there too (cli.py). `ai-router grpc`
run alone is one process, and serves its own registry on a port of its own.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess
from prometheus_client.metrics import MetricWrapperBase

from ai_router.config import Settings
from ai_router.types import Usage

OTHER = "other"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(self, settings: Settings) -> None:
        self.registry = CollectorRegistry()
        self._providers: set[str] = set()
        self._aliases: set[str] = set()
        self._models: set[str] = set()
        self._keys: set[str] = set()
        self._children: dict[tuple[MetricWrapperBase, tuple[str, ...]], Any] = {}
        self.learn(settings)
        r = self.registry
        self.requests = Counter(
            "ai_router_requests",
            "Requests answered, by surface, alias, provider, model and outcome.",
            ["surface", "alias", "provider", "model", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "ai_router_request_duration_seconds",
            "Time from receiving a request to its last byte.",
            ["surface", "provider", "model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "ai_router_time_to_first_token_seconds",
            "Time from receiving a streamed request to its first token from the provider.",
            ["surface", "provider", "model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "ai_router_tokens",
            "Tokens billed by providers, by direction (input, output).",
            ["provider", "model", "direction"],
            registry=r,
        )
        self.cost = Counter(
            "ai_router_cost_usd",
            "What requests cost, in US dollars, by router key (its name) and model.",
            ["key", "provider", "model"],
            registry=r,
        )
        self.retries = Counter(
            "ai_router_retries",
            "Retries of a target, by the reason for retrying.",
            ["provider", "model", "reason"],
            registry=r,
        )
        self.fallbacks = Counter(
            "ai_router_fallbacks",
            "Moves of an alias from a failed target to the next, by the failure.",
            ["alias", "provider", "model", "reason"],
            registry=r,
        )
        self.cooldown = Gauge(
            "ai_router_cooldown_active",
            "1 while a target is cooling down after repeated failures.",
            ["provider", "model"],
            multiprocess_mode="max",
            registry=r,
        )
        self.in_flight = Gauge(
            "ai_router_in_flight_requests",
            "Requests being served now, streams included.",
            ["surface"],
            multiprocess_mode="livesum",
            registry=r,
        )
        self.refused = Counter(
            "ai_router_overload_refusals",
            "Requests refused because the process was at its concurrency limit.",
            ["surface"],
            registry=r,
        )

    def learn(self, settings: Settings) -> None:
        """Take the label values a (re)loaded config names; earlier ones stay valid, so that a
        series never changes meaning."""
        self._providers |= set(settings.providers)
        self._aliases |= set(settings.models)
        self._keys |= {key.name for key in settings.auth.keys}
        self._models |= {
            model
            for provider in settings.providers.values()
            for model in (provider.default_model, *(provider.models or ()))
        } | {target.provider_model for alias in settings.models.values() for target in alias.targets}

    def provider(self, name: str) -> str:
        return name if name in self._providers else OTHER if name else ""

    def model(self, name: str) -> str:
        return name if name in self._models else OTHER if name else ""

    def key(self, name: str) -> str:
        return name if name in self._keys else ""

    def alias(self, name: str) -> str:
        return name if name in self._aliases else ""

    def child(self, metric: MetricWrapperBase, *labels: str) -> Any:
        """`metric.labels(*labels)`, remembered. prometheus_client's `labels` converts, checks
        and looks the values up under a lock on every call; a request sets seven series. The
        label values are bounded (above), so this is too."""
        key = (metric, labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def observe_request(
        self,
        surface: str,
        alias: str,
        provider_name: str,
        model_name: str,
        status: str,
        latency: float,
        time_to_first_token: float | None,
        usage: Usage | None,
        key: str,
        cost_usd: float | None,
    ) -> None:
        """One finished request: `time_to_first_token` is given for streams only."""
        provider, model = self.provider(provider_name), self.model(model_name)
        self.child(self.requests, surface, self.alias(alias), provider, model, status).inc()
        self.child(self.latency, surface, provider, model).observe(latency)
        if time_to_first_token is not None:
            self.child(self.ttft, surface, provider, model).observe(time_to_first_token)
        if usage is not None:
            self.child(self.tokens, provider, model, "input").inc(usage.input_tokens)
            self.child(self.tokens, provider, model, "output").inc(usage.output_tokens)
        if cost_usd:
            self.child(self.cost, self.key(key), provider, model).inc(cost_usd)

    def exposition(self) -> bytes:
        """The text exposition: every worker's values when in multiprocess mode."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)
