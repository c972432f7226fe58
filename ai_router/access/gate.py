"""The gate every generation request passes: who is calling (front doors authenticate), may they
use this model, and can their limits and budget take it (reserve); afterwards, what it cost
(settle), reported on the request's record and, if configured, in the usage log."""

from __future__ import annotations

import json
import logging
import math
import threading

from ai_router import observe
from ai_router.access.keys import Keyring
from ai_router.access.pricing import PriceTable
from ai_router.access.settings import KeySettings
from ai_router.access.store import Limits, QuotaStore, Reservation
from ai_router.config import Settings
from ai_router.policy.executor import Plan
from ai_router.types import ChatRequest, Usage

log = logging.getLogger(__name__)

CHARS_PER_TOKEN = 3  # a cautious estimate of a prompt's tokens before the provider counts them


class Meter:
    """One admitted request's reservation, settled exactly once."""

    def __init__(self, gate: Gate, key: KeySettings | None, reservation: Reservation | None):
        self.key = key
        self._gate = gate
        self._reservation = reservation
        self._settled = False
        self._lock = threading.Lock()

    def settle(self, provider: str, model: str, usage: Usage | None) -> float:
        """Book the real usage (None: nothing was generated); returns its cost in USD."""
        with self._lock:
            if self._settled:
                return 0.0
            self._settled = True
        cost = self._gate.cost(provider, model, usage) if usage else 0.0
        if self._reservation is not None:
            tokens = usage.total_tokens if usage else 0
            try:
                self._gate.store.settle(self._reservation, tokens, cost)
            except Exception:  # the counters are unreachable: the answer still goes out
                log.exception("settling key %r failed", self.key.name if self.key else "")
        return cost


class Gate:
    def __init__(self, settings: Settings) -> None:
        self.keyring = Keyring(settings.auth)
        self.prices = PriceTable(settings.prices)
        self._settings = settings
        self._store: QuotaStore | None = None
        self._store_lock = threading.Lock()
        self._usage_log = settings.usage_log
        self._usage_lock = threading.Lock()

    @property
    def store(self) -> QuotaStore:
        """Opened on first use, in the process that uses it (after any fork)."""
        with self._store_lock:
            if self._store is None:
                self._store = _open_store(self._settings)
            return self._store

    def admit(
        self, key: KeySettings | None, plan: Plan, input_tokens: int, max_output: int | None
    ) -> Meter:
        """Authorize `key` for the model the client named (`plan.name`) and reserve what the
        request may use against its limits: `input_tokens` (an estimate) and `max_output`
        (None: the largest default of the plan's providers). Raises PermissionDenied or
        LimitReached."""
        self.keyring.authorize(key, plan.name)
        record = observe.current()
        if record is not None and key is not None:
            record.key = key.name
        if key is None:
            return Meter(self, key, None)
        # Even a key without limits reserves: its spend is counted all the same.
        max_output = max_output or max(
            target.provider.settings.default_max_tokens for target in plan.targets
        )
        cost = max(
            self.cost(t.provider.name, t.model, Usage(input_tokens, max_output)) for t in plan.targets
        )
        reservation = self.store.reserve(Limits.of(key), input_tokens + max_output, cost)
        return Meter(self, key, reservation)

    def cost(self, provider: str, model: str, usage: Usage) -> float:
        provider_settings = self._settings.providers.get(provider)
        provider_type = provider_settings.type if provider_settings else provider
        return self.prices.cost(provider, provider_type, model, usage)

    def record_usage(self, record: observe.RequestRecord) -> None:
        """Append the request's usage record to the usage log, when one is configured."""
        if not self._usage_log:
            return
        line = json.dumps(record.usage_record(), separators=(",", ":")) + "\n"
        with self._usage_lock, open(self._usage_log, "a", encoding="utf-8") as log_file:
            log_file.write(line)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


def estimate_tokens(request: ChatRequest) -> int:
    characters = len(request.system) + sum(len(m.text) for m in request.messages)
    return math.ceil(characters / CHARS_PER_TOKEN) + len(request.messages)


def estimate_from_text(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def _open_store(settings: Settings) -> QuotaStore:
    if settings.state.backend == "redis":
        from ai_router.access.redis_store import RedisStore

        return RedisStore(settings.state.url)
    from ai_router.access.sqlite_store import SqliteStore

    return SqliteStore(settings.state.path)
