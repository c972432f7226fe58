"""The order in which an alias tries its targets: the first is the choice, the rest are the
fallbacks, whatever the strategy."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Protocol, TypeVar

from ai_router.config import Strategy
from ai_router.policy.stats import TargetStats


class Weighted(Protocol):
    @property
    def key(self) -> str: ...

    @property
    def weight(self) -> float: ...


T = TypeVar("T", bound=Weighted)


def order(
    strategy: Strategy, targets: Sequence[T], stats: TargetStats, rng: random.Random
) -> list[T]:
    if strategy == "fallback":
        return list(targets)
    if strategy == "weighted":
        # Weighted sampling without replacement (Efraimidis-Spirakis): each target's chance to
        # come first is proportional to its weight, and so on down the list.
        return sorted(targets, key=lambda t: rng.random() ** (1.0 / t.weight), reverse=True)
    if strategy == "least-busy":
        return sorted(targets, key=lambda t: stats.in_flight(t.key))
    # lowest-latency: targets never measured come first, so that each gets measured.
    return sorted(targets, key=lambda t: stats.latency(t.key) or 0.0)
