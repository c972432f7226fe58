"""Running one request against its plan: the targets in strategy order, cooled-down ones skipped,
each retried on retryable failures, the next tried on provider-side failures, all within the
caller's time limit.

An attempt is any callable `(target, timeout, lease) -> result`: a unary call, a stream opened
up to its first chunk, or a relay up to the upstream's response headers. Once it has returned,
bytes may reach the client, so nothing after that is retried or failed over.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from ai_router.config import Strategy
from ai_router.errors import (
    RouterError,
    UpstreamAuthFailed,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from ai_router import tracing
from ai_router.answers import Account
from ai_router.metrics import Metrics
from ai_router.policy import balance, retry
from ai_router.policy.cooldown import Cooldowns
from ai_router.policy.stats import Lease, TargetStats
from ai_router.providers.base import Provider

log = logging.getLogger(__name__)

Result = TypeVar("Result")


@dataclass(frozen=True, slots=True)
class Target:
    provider: Provider
    model: str
    timeout: float
    max_retries: int
    weight: float = 1.0

    @property
    def key(self) -> str:
        return f"{self.provider.name}/{self.model}"


@dataclass(frozen=True, slots=True)
class Plan:
    """What a model name resolves to: one target, or an alias's targets and strategy."""

    name: str
    targets: tuple[Target, ...]
    strategy: Strategy = "fallback"
    is_alias: bool = False

    @property
    def full_name(self) -> str:
        """The alias, or `provider/model` however the request named them: what a key's model
        patterns are matched against."""
        return self.name if self.is_alias else self.targets[0].key


Attempt = Callable[[Target, float, Lease], Result]


class Executor:
    def __init__(
        self,
        cooldowns: Cooldowns,
        stats: TargetStats,
        metrics: Metrics | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cooldowns = cooldowns
        self.stats = stats
        self._metrics = metrics
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._clock = clock
        # What the cooldown gauge last showed per target: it is set only on a change, since a
        # multiprocess gauge write (a lock, a pid check, an mmap write) on every attempt shows.
        self._cooling_shown: dict[str, bool] = {}
        self._shown_lock = threading.Lock()

    def run(
        self,
        plan: Plan,
        attempt: Attempt[Result],
        time_limit: float | None,
        account: Account | None = None,
    ) -> Result:
        """The first result of an attempt on the plan's targets; or the last failure, listing
        every attempt. `account` learns each target tried and each failed attempt."""
        deadline = None if time_limit is None else self._clock() + time_limit
        account = account or Account()
        outcomes = account.attempts
        last_error: RouterError | None = None
        order = self._order(plan)
        for position, target in enumerate(order):
            account.answered_by(target.provider.name, target.model)
            try:
                return self._run_target(target, attempt, deadline, outcomes)
            except RouterError as error:
                last_error = error
                if not error.provider_side:
                    break  # the request itself is at fault: another target would refuse it too
                if position + 1 < len(order):
                    self._count("fallbacks", plan.name, target, error)
                    log.warning(
                        "%s: falling back from %s (%s) to %s",
                        plan.name,
                        target.key,
                        outcome_of(error),
                        order[position + 1].key,
                    )
        assert last_error is not None  # a plan has at least one target
        raise last_error.with_attempts(outcomes)

    def _order(self, plan: Plan) -> list[Target]:
        ordered = balance.order(plan.strategy, plan.targets, self.stats, self._rng)
        if not plan.is_alias:
            return ordered  # a direct request has nowhere else to go: never skip its target
        admitted = [target for target in ordered if self.cooldowns.admits(target.key)]
        if admitted:
            return admitted
        wait = min(self.cooldowns.seconds_left(target.key) for target in ordered)
        raise UpstreamUnavailable(
            f"every target of {plan.name!r} is cooling down after repeated failures; the next "
            f"is tried again in {wait:.0f}s",
            provider=ordered[0].provider.name,
            status=503,  # the router's own "come back later", with Retry-After
            retry_after=max(1.0, wait),
        )

    def _run_target(
        self,
        target: Target,
        attempt: Attempt[Result],
        deadline: float | None,
        outcomes: list[str],
    ) -> Result:
        retries = 0
        while True:
            timeout = target.timeout
            if deadline is not None:
                timeout = min(timeout, deadline - self._clock())
                if timeout <= 0:
                    raise UpstreamTimeout(
                        f"the caller's deadline passed before {target.key} could answer",
                        target.provider.name,
                    )
            try:
                return self._attempt(target, attempt, timeout)
            except RouterError as error:
                outcomes.append(f"{target.key}: {outcome_of(error)}")
                if not retry.should_retry(error) or retries >= target.max_retries:
                    raise
                wait = retry.delay(retries, error, self._rng)
                if deadline is not None and self._clock() + wait >= deadline:
                    raise  # no time left to wait for another try
                retries += 1
                self._count("retries", "", target, error)
                log.warning(
                    "retrying %s in %.2fs (retry %d of %d) after %s",
                    target.key,
                    wait,
                    retries,
                    target.max_retries,
                    outcome_of(error),
                )
                self._sleep(wait)

    def _attempt(self, target: Target, attempt: Attempt[Result], timeout: float) -> Result:
        key = target.key
        self.cooldowns.begin(key)
        lease = self.stats.lease(key)
        started = self._clock()
        try:
            with tracing.current_span(
                "ai_router.attempt",
                attributes={"ai_router.target": key, "ai_router.timeout": timeout},
            ):
                result = attempt(target, timeout, lease)
        except RouterError as error:
            lease.release()
            if error.provider_side:
                self.cooldowns.failed(key)
                self._show_cooldown(target)
            else:
                self.cooldowns.ended(key)  # the request's fault: it says nothing of the target
            raise
        except BaseException:
            lease.release()
            self.cooldowns.ended(key)
            raise
        if not lease.kept:
            lease.release()
        self.stats.observe_latency(key, self._clock() - started)
        self.cooldowns.succeeded(key)
        self._show_cooldown(target)
        return result

    def _count(self, counter: str, alias: str, target: Target, error: RouterError) -> None:
        if self._metrics is None:
            return
        provider = self._metrics.provider(target.provider.name)
        model = self._metrics.model(target.model)
        if counter == "retries":
            self._metrics.retries.labels(provider, model, reason_of(error)).inc()
        else:
            alias_label = self._metrics.alias(alias)
            self._metrics.fallbacks.labels(alias_label, provider, model, reason_of(error)).inc()

    def _show_cooldown(self, target: Target) -> None:
        if self._metrics is None or not self.cooldowns.keeps(target.key):
            return  # a target that cannot cool down has nothing to show, and no entry here
        with self._shown_lock:  # the check and the write together, or a race could leave it stale
            cooling = self.cooldowns.cooling(target.key)
            if self._cooling_shown.get(target.key) == cooling:
                return
            self._cooling_shown[target.key] = cooling
            gauge = self._metrics.cooldown.labels(
                self._metrics.provider(target.provider.name), self._metrics.model(target.model)
            )
            gauge.set(1 if cooling else 0)


def reason_of(error: RouterError) -> str:
    """A bounded label for why an attempt failed."""
    if isinstance(error, UpstreamTimeout):
        return "timeout"
    if isinstance(error, UpstreamRateLimited):
        return "rate_limited"
    if isinstance(error, UpstreamAuthFailed):
        return "auth"
    if isinstance(error, UpstreamError):
        return "unavailable" if error.retryable else "rejected"
    return "not_configured" if error.provider_side else "other"


def outcome_of(error: RouterError) -> str:
    """A short, key-free account of one failed attempt."""
    status = getattr(error, "status", None)
    detail = f" (HTTP {status})" if status else ""
    if isinstance(error, UpstreamTimeout):
        return "timed out"
    if isinstance(error, UpstreamRateLimited):
        return f"rate limited{detail}"
    if isinstance(error, UpstreamAuthFailed):
        return f"rejected the router's key{detail}"
    if isinstance(error, UpstreamError):
        return f"failed{detail}" if status else "unreachable"
    return type(error).__name__
