"""Prometheus metrics, in Prometheus conventions (`ai_router_` prefix, `_total`, `_seconds`).

Label values are bounded: providers, aliases and models come from config, and a model the
config does not name is counted as "other", so a client cannot grow the series without limit.

gunicorn's workers each keep their own values in files under PROMETHEUS_MULTIPROC_DIR
(prometheus_client's multiprocess mode, set up in gunicorn.conf.py), and /metrics adds them up;
under `ai-router serve` the gRPC server writes its values there too (cli.py). `ai-router grpc`
run alone is one process, and serves its own registry on a port of its own.

What every request reports (its count, latency, tokens and cost, and the requests in flight) is
kept in memory and written out in batches: every BATCH_SECONDS by the process's batch thread
(batches.py), and before any scrape the process answers itself. Each write of a value
in multiprocess mode takes a lock and writes a file mapping; a request made eight, and they were
a sixth of the router's own work per request (docs/PERFORMANCE.md). A scrape answered by another
worker may so miss the last BATCH_SECONDS of this one's requests, never more.
"""

from __future__ import annotations

import bisect
import glob
import os
import threading
from collections import deque
from typing import Any, NamedTuple

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess
from prometheus_client.metrics import MetricWrapperBase

from ai_router import batches
from ai_router.config import Settings
from ai_router.types import Usage

OTHER = "other"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Finished(NamedTuple):
    """One finished request, as `Metrics.observe_request` was told of it."""

    surface: str
    alias: str
    provider: str
    model: str
    status: str
    latency: float
    time_to_first_token: float | None
    usage: Usage | None
    key: str
    cost_usd: float | None


class _Series:
    """The requests of one batch with the same labels, added up."""

    __slots__ = ("requests", "latencies", "times_to_first_token", "billed", "input_tokens", "output_tokens", "cost_usd")

    def __init__(self) -> None:
        self.requests = 0
        self.latencies: list[float] = []
        self.times_to_first_token: list[float] = []
        self.billed = False
        self.input_tokens = 0
        self.output_tokens = 0
        self.cost_usd = 0.0

    def add(self, request: _Finished) -> None:
        self.requests += 1
        self.latencies.append(request.latency)
        if request.time_to_first_token is not None:
            self.times_to_first_token.append(request.time_to_first_token)
        if request.usage is not None:
            self.billed = True
            self.input_tokens += request.usage.input_tokens
            self.output_tokens += request.usage.output_tokens
        if request.cost_usd:
            self.cost_usd += request.cost_usd


class _InFlight(NamedTuple):
    surface: str
    change: int


class Metrics:
    def __init__(self, settings: Settings) -> None:
        self.registry = CollectorRegistry()
        # First in the registry, so that reading it (the gRPC process's own port, a test) writes
        # what is pending before any value is read.
        self.registry.register(_FlushFirst())
        self._pending: deque[_Finished | _InFlight] = deque()  # appends and pops are atomic
        self._flushing = threading.Lock()
        batches.watch(self)
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
        """One finished request: `time_to_first_token` is given for streams only. Written out
        with the next batch."""
        self._pending.append(_Finished(
            surface, alias, provider_name, model_name, status, latency, time_to_first_token,
            usage, key, cost_usd,
        ))  # fmt: skip
        batches.started()

    def count_in_flight(self, surface: str, change: int) -> None:
        """A request of `surface` began (+1) or ended (-1). Written out with the next batch,
        where the two of a request shorter than BATCH_SECONDS cancel out."""
        self._pending.append(_InFlight(surface, change))
        batches.started()

    def flush(self, pause: batches.Pause = batches.no_pause) -> None:
        """Write out what is pending: the requests of one series added up, one write per
        counter (a latency is still one observation each). Short whatever the number of
        requests, so it never pauses."""
        with self._flushing:
            pending = self._pending
            in_flight: dict[str, int] = {}
            series: dict[tuple[str, str, str, str, str, str], _Series] = {}
            while pending:
                item = pending.popleft()
                if isinstance(item, _InFlight):
                    in_flight[item.surface] = in_flight.get(item.surface, 0) + item.change
                    continue
                labels = (item.surface, item.alias, item.provider, item.model, item.status, item.key)
                found = series.get(labels)
                if found is None:
                    found = series[labels] = _Series()
                found.add(item)
            for surface, change in in_flight.items():
                if change:
                    self.child(self.in_flight, surface).inc(change)
            for labels, totals in series.items():
                self._write(*labels, totals)

    def _write(
        self, surface: str, alias: str, provider_name: str, model_name: str, status: str, key: str, totals: _Series
    ) -> None:
        provider, model = self.provider(provider_name), self.model(model_name)
        self.child(self.requests, surface, self.alias(alias), provider, model, status).inc(totals.requests)
        observe_all(self.child(self.latency, surface, provider, model), totals.latencies)
        if totals.times_to_first_token:  # streams only: a unary series has no such histogram
            observe_all(self.child(self.ttft, surface, provider, model), totals.times_to_first_token)
        if totals.billed:
            self.child(self.tokens, provider, model, "input").inc(totals.input_tokens)
            self.child(self.tokens, provider, model, "output").inc(totals.output_tokens)
        if totals.cost_usd:
            self.child(self.cost, self.key(key), provider, model).inc(totals.cost_usd)

    def forked(self) -> None:
        """In a forked child: the batch it holds is the parent's, which the parent writes, and
        its lock may have been taken by the parent's flusher at the fork."""
        self._pending.clear()
        self._flushing = threading.Lock()

    def exposition(self) -> bytes:
        """The text exposition: every worker's values when in multiprocess mode."""
        batches.flush_all()  # this process's finished requests, then their metrics
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if directory:
            registry = CollectorRegistry()
            registry.register(_WrittenFiles(directory))
            return generate_latest(registry)
        return generate_latest(self.registry)


def observe_all(histogram: Any, values: list[float]) -> None:
    """What `histogram.observe(v)` for each of `values` does, in one write to each bucket that
    gets any and one to the sum. In multiprocess mode each write takes a lock, asks the pid (a
    system call) and writes a file mapping: observed one by one, a request cost two of each.
    prometheus_client has no call for it, so this uses its Histogram's own fields, which
    tests/test_metrics.py holds to observe's results."""
    bounds: list[float] = histogram._upper_bounds  # ascending, +Inf last
    counts = [0] * len(bounds)
    for value in values:
        counts[bisect.bisect_left(bounds, value)] += 1  # the first bound >= value, as observe
    histogram._sum.inc(sum(values))
    for bucket, count in zip(histogram._buckets, counts):
        if count:
            bucket.inc(count)


class _WrittenFiles:
    """prometheus_client's MultiProcessCollector, past the files that are still empty. A
    process creates its file before it sizes it: a scrape in that moment, or after a process
    was killed in it (its empty file then stays), fails whole on the empty file
    (prometheus/client_python#1199). An empty file holds no values, so leaving it out loses
    none."""

    def __init__(self, directory: str) -> None:
        self._directory = directory

    def collect(self) -> Any:
        files = [path for path in glob.glob(os.path.join(self._directory, "*.db")) if _written(path)]
        return multiprocess.MultiProcessCollector.merge(files, accumulate=True)  # type: ignore[no-untyped-call]


def _written(path: str) -> bool:
    try:
        return os.path.getsize(path) > 0
    except FileNotFoundError:  # a dead process's live gauge, removed since the listing
        return False


class _FlushFirst:
    """A collector that collects nothing: it writes the process's pending batches (its requests'
    reports, then its Metrics' values) when the registry is read."""

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> list[Any]:
        batches.flush_all()
        return []
