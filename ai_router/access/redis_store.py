"""The shared store for several replicas: Redis, with each check-and-update one Lua script, which
Redis runs atomically. The rules are those of store.py, step for step as in sqlite_store.py.

Times inside the scripts are Redis's own (TIME), so replicas whose clocks differ agree on when a
lease ends. A reservation carries a deadline on that clock: a script that Redis runs after the
router stopped waiting for it (a frozen Redis, a slow network) changes nothing. The deadline is
half the wait, so that an error in this process's idea of Redis's clock (less than that half)
cannot let a script run after the router gave up on it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import redis

from ai_router.access.redis_client import state_redis
from ai_router.access.store import (
    CONCURRENCY_RETRY_SECONDS,
    Limits,
    QuotaStore,
    Reservation,
    Spend,
    limit_reached,
)
from ai_router.errors import StateUnavailable

PREFIX = "ai-router:"

# Redis's clock, in seconds.
_NOW = """
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
"""

# Ends the holds of KEYS[1] (leases: sorted set by expiry) whose process stopped renewing them:
# their ids leave KEYS[2] (holds: id -> "period cost"), their cost leaves the reserved spend of
# KEYS[3] (the spend hash of `period`).
_SWEEP = """
local function sweep(leases, holds, spend, period, now)
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', leases, '-inf', now)) do
    local hold = redis.call('HGET', holds, id)
    if hold then
      local held_period, cost = string.match(hold, '^(%S+) (%S+)$')
      if held_period == period then
        local reserved = tonumber(redis.call('HGET', spend, 'reserved') or '0')
        redis.call('HSET', spend, 'reserved', tostring(math.max(0, reserved - tonumber(cost))))
      end
      redis.call('HDEL', holds, id)
    end
    redis.call('ZREM', leases, id)
  end
end
"""

# KEYS: rpm bucket, tpm bucket, leases, holds, spend (hash of the period)
# ARGV: deadline, rpm, tpm, tokens, max_concurrent, budget, cost, lease, lease seconds,
# period end, concurrency retry seconds, period
# Returns {"ok"}, {"late"} or {which, retry_after as a string}.
_RESERVE = _NOW + _SWEEP + """
local now = clock()
if now > tonumber(ARGV[1]) then return {'late'} end
if redis.call('ZSCORE', KEYS[3], ARGV[8]) then return {'ok'} end  -- sent again
local function level(key, capacity)
  if capacity <= 0 then return 0 end
  local l = tonumber(redis.call('HGET', key, 'level'))
  if not l then return capacity end
  local updated = tonumber(redis.call('HGET', key, 'updated'))
  return math.min(capacity, l + math.max(0, now - updated) * capacity / 60)
end
sweep(KEYS[3], KEYS[4], KEYS[5], ARGV[12], now)
local rpm, tpm = tonumber(ARGV[2]), tonumber(ARGV[3])
local tokens, max_concurrent = tonumber(ARGV[4]), tonumber(ARGV[5])
local budget, cost = tonumber(ARGV[6]), tonumber(ARGV[7])
local rpm_level, tpm_level = level(KEYS[1], rpm), level(KEYS[2], tpm)
local needed = math.min(tokens, tpm)
if rpm > 0 and rpm_level < 1 then
  return {'rpm', tostring((1 - rpm_level) * 60 / rpm)}
end
if tpm > 0 and tpm_level < needed then
  return {'tpm', tostring((needed - tpm_level) * 60 / tpm)}
end
if max_concurrent > 0 and redis.call('ZCARD', KEYS[3]) >= max_concurrent then
  return {'max_concurrent', ARGV[11]}
end
if budget > 0 then
  local spent = tonumber(redis.call('HGET', KEYS[5], 'spent') or '0')
  local reserved = tonumber(redis.call('HGET', KEYS[5], 'reserved') or '0')
  if spent + reserved + cost > budget then
    return {'budget', tostring(math.max(1, tonumber(ARGV[10]) - now))}
  end
end
if rpm > 0 then redis.call('HSET', KEYS[1], 'level', rpm_level - 1, 'updated', now) end
if tpm > 0 then redis.call('HSET', KEYS[2], 'level', tpm_level - tokens, 'updated', now) end
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[9]), ARGV[8])
redis.call('HSET', KEYS[4], ARGV[8], ARGV[12] .. ' ' .. ARGV[7])
redis.call('HINCRBYFLOAT', KEYS[5], 'reserved', cost)
redis.call('EXPIREAT', KEYS[5], math.ceil(tonumber(ARGV[10])) + 86400)
return {'ok'}
"""

# KEYS: tpm bucket, leases, holds, spend. ARGV: tpm, reserved tokens, used tokens, lease,
# reserved cost, real cost
_SETTLE = _NOW + """
local now, tpm = clock(), tonumber(ARGV[1])
if tpm > 0 then
  local l = tonumber(redis.call('HGET', KEYS[1], 'level'))
  if l then
    local updated = tonumber(redis.call('HGET', KEYS[1], 'updated'))
    l = math.min(tpm, l + math.max(0, now - updated) * tpm / 60)
  else
    l = tpm
  end
  redis.call('HSET', KEYS[1], 'level', l + tonumber(ARGV[2]) - tonumber(ARGV[3]), 'updated', now)
end
redis.call('ZREM', KEYS[2], ARGV[4])
-- A hold swept as a dead process's gave back its reserved spend already.
if redis.call('HDEL', KEYS[3], ARGV[4]) == 1 then
  local reserved = tonumber(redis.call('HGET', KEYS[4], 'reserved') or '0')
  redis.call('HSET', KEYS[4], 'reserved', tostring(math.max(0, reserved - tonumber(ARGV[5]))))
end
redis.call('HINCRBYFLOAT', KEYS[4], 'spent', ARGV[6])
return 'ok'
"""

# KEYS: the leases set of each live reservation. ARGV: lease seconds, then each one's id.
# Returns Redis's TIME, which keeps this process's idea of Redis's clock.
_RENEW = """
local t = redis.call('TIME')
local expires = tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(ARGV[1])
for i, leases in ipairs(KEYS) do
  if redis.call('ZSCORE', leases, ARGV[i + 1]) then
    redis.call('ZADD', leases, 'XX', expires, ARGV[i + 1])
  end
end
return t
"""

# KEYS: leases, holds, spend. ARGV: period. Returns {spent, reserved} after a sweep.
_SPEND = _NOW + _SWEEP + """
sweep(KEYS[1], KEYS[2], KEYS[3], ARGV[1], clock())
return {redis.call('HGET', KEYS[3], 'spent') or '0', redis.call('HGET', KEYS[3], 'reserved') or '0'}
"""


class RedisStore(QuotaStore):
    def __init__(self, url: str, lease_seconds: float, timeout_seconds: float) -> None:
        # A resent reservation (after a failed connection) finds its lease and is not taken twice.
        self._redis, self._where = state_redis(url, timeout_seconds)
        self._lease_seconds = lease_seconds
        self._timeout = timeout_seconds
        self._clock_offset: float | None = None  # Redis's clock minus ours
        self._reserve = self._redis.register_script(_RESERVE)
        self._settle = self._redis.register_script(_SETTLE)
        self._renew = self._redis.register_script(_RENEW)
        self._spend = self._redis.register_script(_SPEND)

    def reserve(self, limits: Limits, tokens: int, cost: float) -> Reservation:
        now = self._redis_now()
        period = limits.period_index(now)
        lease = self.new_lease()
        period_end = (period + 1) * limits.period if limits.period else now
        result: Any = self._run(
            self._reserve,
            keys=self._keys(limits, period),
            args=[
                repr(now + self._timeout / 2), limits.rpm, limits.tpm, tokens, limits.max_concurrent,
                repr(limits.budget), repr(cost), lease, repr(self._lease_seconds),
                repr(period_end), repr(CONCURRENCY_RETRY_SECONDS), str(period),
            ],
        )
        verdict = result[0].decode()
        if verdict == "late":
            raise StateUnavailable(f"{self._where} answered after {self._timeout:g}s")
        if verdict != "ok":
            raise limit_reached(limits, verdict, float(result[1]))
        return Reservation(limits, tokens, cost, period, lease)

    def settle(self, reservation: Reservation, tokens: int, cost: float) -> None:
        limits = reservation.limits
        _, tpm_key, leases, holds, spend = self._keys(limits, reservation.period)
        self._run(
            self._settle,
            keys=[tpm_key, leases, holds, spend],
            args=[
                limits.tpm, reservation.tokens, tokens, reservation.lease,
                repr(reservation.cost), repr(cost),
            ],
        )

    def renew(self, reservations: Sequence[Reservation]) -> None:
        sent = time.time()
        seconds, microseconds = self._run(
            self._renew,
            keys=[self._keys(r.limits, r.period)[2] for r in reservations],
            args=[repr(self._lease_seconds), *(r.lease for r in reservations)],
        )
        received = time.time()
        self._clock_offset = int(seconds) + int(microseconds) / 1e6 - (sent + received) / 2

    def spend(self, limits: Limits) -> Spend:
        period = limits.period_index(self._redis_now())
        _, _, leases, holds, spend = self._keys(limits, period)
        values = self._run(self._spend, keys=[leases, holds, spend], args=[str(period)])
        spent, reserved = (float(value) for value in values)
        start = period * limits.period
        return Spend(spent, reserved, start, start + limits.period)

    def check(self) -> None:
        self.renew(())
        self._run(self._redis.set, f"{PREFIX}check", repr(time.time()), px=60_000)

    def close(self) -> None:
        self._redis.close()

    def _redis_now(self) -> float:
        """Redis's clock as this process knows it; asked once, then kept by each renewal."""
        if self._clock_offset is None:
            self.renew(())
        return time.time() + (self._clock_offset or 0.0)

    def _run(self, command: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except redis.TimeoutError:
            raise StateUnavailable(f"{self._where} did not answer within {self._timeout:g}s") from None
        except redis.RedisError as error:
            raise StateUnavailable(f"{self._where}: {error}") from None

    @staticmethod
    def _keys(limits: Limits, period: int) -> list[str]:
        base = f"{PREFIX}{limits.key}:"
        return [base + "rpm", base + "tpm", base + "leases", base + "holds", f"{base}spend:{period}"]
