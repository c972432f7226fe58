"""The resilience policy, each piece alone, with fake clocks and fake attempts."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from ai_router.config import CooldownSettings, settings_from_mapping
from ai_router.errors import (
    InvalidRequest,
    RouterError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from ai_router.metrics import Metrics
from ai_router.policy import balance, retry
from ai_router.policy.cooldown import Cooldowns
from ai_router.policy.executor import Executor, Plan, Target
from ai_router.policy.stats import Lease, TargetStats
from ai_router.providers.openai_provider import OpenAIProvider


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class Named:
    key: str
    weight: float = 1.0


# --- retry ---------------------------------------------------------------------------------------


def test_retry_waits_what_the_provider_asked_for_up_to_a_cap() -> None:
    rng = random.Random(1)

    assert retry.delay(0, UpstreamRateLimited("x", "p", 429, retry_after=3), rng) == 3
    capped = retry.delay(0, UpstreamRateLimited("x", "p", 429, retry_after=600), rng)
    assert capped == retry.MAX_RETRY_AFTER


def test_retry_backs_off_exponentially_with_jitter() -> None:
    rng = random.Random(1)
    error = UpstreamUnavailable("x", "p", 500)

    delays = [retry.delay(n, error, rng) for n in range(6)]

    for n, seconds in enumerate(delays):
        full = min(retry.MAX_DELAY, retry.INITIAL_DELAY * 2**n)
        assert full * (1 - retry.JITTER) <= seconds <= full


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (UpstreamRateLimited("x", "p", 429), True),
        (UpstreamUnavailable("x", "p", 500), True),
        (UpstreamUnavailable("x", "p", 529), True),
        (UpstreamUnavailable("connection refused", "p"), True),
        (UpstreamTimeout("x", "p", 408), True),
        (UpstreamRejected("x", "p", 409), True),
        (UpstreamRejected("x", "p", 400), False),
        (UpstreamRejected("x", "p", 422), False),
        (InvalidRequest("x"), False),
    ],
)
def test_only_provider_side_transient_failures_are_retried(
    error: RouterError, retryable: bool
) -> None:
    assert retry.should_retry(error) is retryable


# --- cooldown ------------------------------------------------------------------------------------


def test_a_target_cools_down_after_repeated_failures_then_takes_one_probe() -> None:
    clock = Clock()
    cooldowns = Cooldowns(CooldownSettings(failures=2, window_seconds=10, seconds=5), ["a"], clock)

    cooldowns.failed("a")
    assert cooldowns.admits("a")
    cooldowns.failed("a")
    assert not cooldowns.admits("a")
    assert cooldowns.seconds_left("a") == 5

    clock.now += 5
    assert cooldowns.admits("a")  # half-open: one probe
    cooldowns.begin("a")
    assert not cooldowns.admits("a")  # ...and only one
    cooldowns.succeeded("a")
    assert cooldowns.admits("a")


def test_a_failed_probe_rests_the_target_again() -> None:
    clock = Clock()
    cooldowns = Cooldowns(CooldownSettings(failures=1, window_seconds=10, seconds=5), ["a"], clock)
    cooldowns.failed("a")
    clock.now += 5
    cooldowns.begin("a")

    cooldowns.failed("a")

    assert not cooldowns.admits("a")
    assert cooldowns.seconds_left("a") == 5


def test_failures_outside_the_window_do_not_add_up() -> None:
    clock = Clock()
    cooldowns = Cooldowns(CooldownSettings(failures=2, window_seconds=10, seconds=5), ["a"], clock)

    cooldowns.failed("a")
    clock.now += 11
    cooldowns.failed("a")

    assert cooldowns.admits("a")


def test_only_the_targets_the_config_names_cool_down() -> None:
    cooldowns = Cooldowns(CooldownSettings(failures=1, window_seconds=10, seconds=5), ["a"], Clock())

    cooldowns.failed("a")
    cooldowns.failed("made-up")

    assert cooldowns.cooling("a")
    assert not cooldowns.cooling("made-up") and cooldowns.admits("made-up")


# --- balance -------------------------------------------------------------------------------------


def test_fallback_keeps_the_listed_order() -> None:
    targets = [Named("a"), Named("b"), Named("c")]

    assert balance.order("fallback", targets, TargetStats(["a", "b", "c"]), random.Random()) == targets


def test_weighted_puts_each_target_first_in_proportion_to_its_weight() -> None:
    targets = [Named("a", 3), Named("b", 1)]
    rng = random.Random(7)

    firsts = [balance.order("weighted", targets, TargetStats(["a", "b"]), rng)[0].key for _ in range(4000)]

    assert 0.72 < firsts.count("a") / len(firsts) < 0.78


def test_least_busy_prefers_the_target_with_fewest_requests_in_flight() -> None:
    stats = TargetStats(["a", "b", "c"])
    held: list[Lease] = [stats.lease("a"), stats.lease("a"), stats.lease("b")]

    ordered = balance.order("least-busy", [Named("a"), Named("b"), Named("c")], stats, random.Random())

    assert [t.key for t in ordered] == ["c", "b", "a"]
    for lease in held:
        lease.release()
    assert stats.in_flight("a") == 0


def test_lowest_latency_prefers_the_fastest_and_measures_the_unmeasured_first() -> None:
    stats = TargetStats(["slow", "fast", "new"])
    stats.observe_latency("slow", 2.0)
    stats.observe_latency("fast", 0.2)

    ordered = balance.order(
        "lowest-latency", [Named("slow"), Named("fast"), Named("new")], stats, random.Random()
    )

    assert [t.key for t in ordered] == ["new", "fast", "slow"]


def test_statistics_are_kept_for_the_targets_the_config_names_only() -> None:
    stats = TargetStats(["a"])

    leases = [stats.lease("a"), stats.lease("made-up")]
    stats.observe_latency("a", 0.5)
    stats.observe_latency("made-up", 0.5)

    assert (stats.in_flight("a"), stats.latency("a")) == (1, 0.5)
    assert (stats.in_flight("made-up"), stats.latency("made-up")) == (0, None)
    for lease in leases:
        lease.release()
    assert stats.in_flight("a") == 0


# --- executor ------------------------------------------------------------------------------------


def make_target(name: str, max_retries: int = 2, timeout: float = 10.0) -> Target:
    settings = settings_from_mapping({"providers": {name: {"type": "openai", "default_model": "m"}}}, {})
    return Target(OpenAIProvider(settings.providers[name]), "m", timeout, max_retries)


NAMED = ["a/m", "b/m"]  # the targets the config names


def make_executor(clock: Clock, failures: int = 3) -> Executor:
    settings = CooldownSettings(failures=failures, window_seconds=60, seconds=30)
    cooldowns = Cooldowns(settings, NAMED, clock)
    return Executor(cooldowns, TargetStats(NAMED), rng=random.Random(1), sleep=clock.sleep, clock=clock)


class Script:
    """An attempt that fails as scripted per target, then answers with the target's key."""

    def __init__(self, **failures: list[RouterError]) -> None:
        self.failures = failures
        self.calls: list[tuple[str, float]] = []

    def __call__(self, target: Target, timeout: float, lease: Lease) -> str:
        self.calls.append((target.key, timeout))
        queue = self.failures.get(target.provider.name, [])
        if queue:
            raise queue.pop(0)
        return target.key


def test_retries_then_answers_from_the_same_target() -> None:
    clock = Clock()
    script = Script(a=[UpstreamRateLimited("busy", "a", 429, retry_after=2)])

    result = make_executor(clock).run(Plan("a/m", (make_target("a"),)), script, None)

    assert result == "a/m"
    assert [key for key, _ in script.calls] == ["a/m", "a/m"]
    assert clock.now == 102.0  # waited the retry-after


def test_falls_back_once_a_targets_retries_are_spent_and_lists_nothing_on_success() -> None:
    clock = Clock()
    script = Script(a=[UpstreamUnavailable(f"down {n}", "a", 500) for n in range(3)])
    plan = Plan("smart", (make_target("a"), make_target("b")), is_alias=True)

    result = make_executor(clock).run(plan, script, None)

    assert result == "b/m"
    assert [key for key, _ in script.calls] == ["a/m"] * 3 + ["b/m"]


def test_when_every_target_fails_the_error_lists_every_attempt() -> None:
    clock = Clock()
    script = Script(
        a=[UpstreamUnavailable("down", "a", 500)],
        b=[UpstreamTimeout("slow", "b")],
    )
    plan = Plan(
        "smart", (make_target("a", max_retries=0), make_target("b", max_retries=0)), is_alias=True
    )

    with pytest.raises(UpstreamTimeout) as caught:
        make_executor(clock).run(plan, script, None)

    assert caught.value.attempts == ("a/m: failed (HTTP 500)", "b/m: timed out")
    assert "a/m: failed (HTTP 500); b/m: timed out" in caught.value.message


def test_the_clients_own_error_is_neither_retried_nor_failed_over() -> None:
    script = Script(a=[UpstreamRejected("bad max_tokens", "a", 400)])
    plan = Plan("smart", (make_target("a"), make_target("b")), is_alias=True)

    with pytest.raises(UpstreamRejected):
        make_executor(Clock()).run(plan, script, None)

    assert [key for key, _ in script.calls] == ["a/m"]


def test_the_time_limit_bounds_each_attempt_and_stops_retries() -> None:
    clock = Clock()
    script = Script(a=[UpstreamUnavailable("down", "a", 500, retry_after=3)] * 3)

    with pytest.raises(UpstreamUnavailable):
        make_executor(clock).run(Plan("a/m", (make_target("a"),)), script, time_limit=2.0)

    assert script.calls == [("a/m", 2.0)]  # the 3 s retry-after would outlive the limit


def test_an_alias_skips_a_cooling_target_and_refuses_when_all_are_cooling() -> None:
    clock = Clock()
    executor = make_executor(clock, failures=1)
    a, b = make_target("a", max_retries=0), make_target("b", max_retries=0)
    plan = Plan("smart", (a, b), is_alias=True)
    executor.run(plan, Script(a=[UpstreamUnavailable("down", "a", 500)]), None)

    skipping = Script()
    assert executor.run(plan, skipping, None) == "b/m"
    assert skipping.calls == [("b/m", 10.0)]

    executor.cooldowns.failed("b/m")
    with pytest.raises(UpstreamUnavailable, match="every target of 'smart' is cooling down"):
        executor.run(plan, Script(), None)
    # A direct request is never refused for a cooldown: it has nowhere else to go.
    assert executor.run(Plan("a/m", (a,)), Script(), None) == "a/m"


def test_the_cooldown_gauge_shows_a_target_cooling_and_then_recovered() -> None:
    clock = Clock()
    settings = settings_from_mapping({"providers": {"a": {"type": "openai", "default_model": "m"}}}, {})
    metrics = Metrics(settings)
    cooldowns = Cooldowns(CooldownSettings(failures=1, window_seconds=60, seconds=30), NAMED, clock)
    executor = Executor(cooldowns, TargetStats(NAMED), metrics, random.Random(1), clock.sleep, clock)
    plan = Plan("a/m", (make_target("a", max_retries=0),))

    def shown() -> float | None:
        return metrics.registry.get_sample_value(
            "ai_router_cooldown_active", {"provider": "a", "model": "m"}
        )

    assert executor.run(plan, Script(), None) == "a/m"
    assert shown() == 0
    with pytest.raises(UpstreamUnavailable):
        executor.run(plan, Script(a=[UpstreamUnavailable("down", "a", 500)]), None)
    assert shown() == 1
    clock.now += 31  # the cooldown is over; the next answer ends it
    assert executor.run(plan, Script(), None) == "a/m"
    assert shown() == 0
