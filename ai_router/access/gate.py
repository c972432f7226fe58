"""The gate every generation request passes: who is calling (front doors authenticate), may they
use this model (authorize), and can their limits and budget take it (reserve); afterwards, what
it cost (settle). And the usage log, when one is configured."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence

import orjson

from ai_router.access.heartbeat import Heartbeat
from ai_router.access.keys import Keyring
from ai_router.access.pricing import PriceTable
from ai_router.access.settings import KeySettings, StateSettings
from ai_router.access.store import Limits, QuotaStore, Reservation
from ai_router.config import Settings
from ai_router.errors import InvalidRequest, StateUnavailable
from ai_router.policy.executor import Plan
from ai_router.types import Usage

log = logging.getLogger(__name__)


class Meter:
    """One admitted request's reservation, settled exactly once."""

    def __init__(self, gate: Gate, key: KeySettings | None, reservation: Reservation | None):
        self.key = key
        self._gate = gate
        self._reservation = reservation
        # Taken by the first settle: list.pop is atomic, so two threads never both take it,
        # without a lock made for every request (under gevent, a Python-level one).
        self._unsettled = [True]

    def settle(self, provider: str, model: str, usage: Usage | None) -> float:
        """Book the real usage (None: nothing was generated); returns its cost in USD."""
        try:
            self._unsettled.pop()
        except IndexError:
            return 0.0
        cost = self._gate.cost(provider, model, usage) if usage else 0.0
        if self._reservation is not None:
            self._gate.settle(self._reservation, usage.total_tokens if usage else 0, cost)
        return cost


class Gate:
    def __init__(self, settings: Settings) -> None:
        self.keyring = Keyring(settings.auth)
        self.prices = PriceTable(settings.prices)
        self._settings = settings
        self._store: QuotaStore | None = None
        self._heartbeat: Heartbeat | None = None
        self._store_lock = threading.Lock()
        self._usage_log = settings.usage_log
        self._usage_lock = threading.Lock()

    @property
    def store(self) -> QuotaStore:
        """Opened on first use, in the process that uses it (after any fork)."""
        return self._open()[0]

    def state_problem(self) -> str | None:
        """Why the store of limits and budgets is unusable now; None when it is, or when no
        key needs it."""
        if not self.keyring.enabled:
            return None
        return self._open()[1].problem

    def authorize(self, key: KeySettings | None, model: str) -> None:
        """Raises PermissionDenied unless `key` may use `model` (the name the client used)."""
        self.keyring.authorize(key, model)

    def reserve(
        self, key: KeySettings | None, plan: Plan, input_tokens: int, max_output: int | None
    ) -> Meter:
        """Reserve what the request may use against the key's limits: `input_tokens` (an
        estimate) and `max_output` (None: the largest default of the plan's providers). Raises
        LimitReached."""
        if key is None:
            return Meter(self, key, None)
        # Even a key without limits reserves: its spend is counted all the same.
        if max_output is None:
            max_output = max(target.provider.settings.default_max_tokens for target in plan.targets)
        cost = max(
            self.cost(t.provider.name, t.model, Usage(input_tokens, max_output)) for t in plan.targets
        )
        if key.budget_usd is not None and cost > key.budget_usd:
            # No wait would help: the request alone may cost more than the whole budget.
            raise InvalidRequest(
                f"this request may cost up to ${cost:.6g} ({max_output} tokens out at "
                f"{plan.full_name}'s prices), more than the whole budget of key {key.name!r} "
                f"(${key.budget_usd:g}); ask for fewer max_tokens",
                param="max_tokens",
            )
        store, heartbeat = self._open()
        try:
            reservation = store.reserve(Limits.of(key), input_tokens + max_output, cost)
        except StateUnavailable as error:
            if self._settings.state.when_unavailable == "fail_closed":
                raise
            log.warning("key %r served uncounted (state.when_unavailable: fail_open): %s",
                        key.name, error)
            return Meter(self, key, None)
        heartbeat.hold(reservation)
        return Meter(self, key, reservation)

    def settle(self, reservation: Reservation, tokens: int, cost: float) -> None:
        store, heartbeat = self._open()
        heartbeat.release(reservation)
        try:
            store.settle(reservation, tokens, cost)
        except StateUnavailable as error:  # the answer still goes out; the hold ends by itself
            log.error(
                "key %r: usage not booked ($%.6g): %s; its hold ends within %gs",
                reservation.limits.key, cost, error, self._settings.state.lease_seconds,
            )

    def cost(self, provider: str, model: str, usage: Usage) -> float:
        provider_settings = self._settings.providers.get(provider)
        provider_type = provider_settings.type if provider_settings else provider
        return self.prices.cost(provider, provider_type, model, usage)

    def record_usage(self, records: Sequence[Mapping[str, object]]) -> None:
        """Append requests' usage records to the usage log, when one is configured: one line
        each, in one write. Opened anew each time, so a log moved or deleted (rotated) is made
        again at its path."""
        if not self._usage_log or not records:
            return
        lines = b"".join(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE) for record in records)
        with self._usage_lock, open(self._usage_log, "ab") as log_file:
            log_file.write(lines)

    def close(self) -> None:
        with self._store_lock:
            if self._heartbeat is not None:
                self._heartbeat.stop()
            if self._store is not None:
                self._store.close()

    def _open(self) -> tuple[QuotaStore, Heartbeat]:
        with self._store_lock:
            if self._store is None or self._heartbeat is None:
                state = self._settings.state
                self._store = open_store(state)
                self._heartbeat = Heartbeat(self._store, state.lease_seconds)
                self._heartbeat.start()
            return self._store, self._heartbeat


def open_store(state: StateSettings) -> QuotaStore:
    if state.backend == "redis":
        from ai_router.access.redis_store import RedisStore

        return RedisStore(state.url, state.lease_seconds, state.timeout_seconds)
    from ai_router.access.sqlite_store import SqliteStore

    return SqliteStore(state.path, state.lease_seconds)


def check_state(settings: Settings) -> None:
    """At start: the store that keys need takes a write, or StateUnavailable says what to fix."""
    if not settings.auth.keys:
        return
    store = open_store(settings.state)
    try:
        store.check()
    finally:
        store.close()
