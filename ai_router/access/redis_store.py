"""The shared store for several replicas: Redis, with each check-and-update one Lua script, which
Redis runs atomically. The rules are those of store.py, step for step as in sqlite_store.py."""

from __future__ import annotations

from typing import Any

import redis

from ai_router.access.store import (
    CONCURRENCY_RETRY_SECONDS,
    LEASE_SECONDS,
    Limits,
    QuotaStore,
    Reservation,
    Spend,
    limit_reached,
)

PREFIX = "ai-router:"

# KEYS: rpm bucket, tpm bucket, leases (sorted set by expiry), spend (hash of the period)
# ARGV: now, rpm, tpm, tokens, max_concurrent, budget, cost, lease, lease_expires, period_end,
# concurrency retry seconds
# Returns {"ok"} or {which, retry_after as a string}.
_RESERVE = """
local now = tonumber(ARGV[1])
local function level(key, capacity)
  if capacity <= 0 then return 0 end
  local l = tonumber(redis.call('HGET', key, 'level'))
  if not l then return capacity end
  local updated = tonumber(redis.call('HGET', key, 'updated'))
  return math.min(capacity, l + math.max(0, now - updated) * capacity / 60)
end
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
if max_concurrent > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if redis.call('ZCARD', KEYS[3]) >= max_concurrent then
    return {'max_concurrent', ARGV[11]}
  end
end
if budget > 0 then
  local spent = tonumber(redis.call('HGET', KEYS[4], 'spent') or '0')
  local reserved = tonumber(redis.call('HGET', KEYS[4], 'reserved') or '0')
  if spent + reserved + cost > budget then
    return {'budget', tostring(math.max(1, tonumber(ARGV[10]) - now))}
  end
end
if rpm > 0 then redis.call('HSET', KEYS[1], 'level', rpm_level - 1, 'updated', now) end
if tpm > 0 then redis.call('HSET', KEYS[2], 'level', tpm_level - tokens, 'updated', now) end
redis.call('ZADD', KEYS[3], tonumber(ARGV[9]), ARGV[8])
redis.call('HINCRBYFLOAT', KEYS[4], 'reserved', cost)
redis.call('EXPIREAT', KEYS[4], math.ceil(tonumber(ARGV[10])) + 86400)
return {'ok'}
"""

# KEYS: tpm bucket, leases, spend. ARGV: now, tpm, reserved tokens, used tokens, lease,
# reserved cost, real cost
_SETTLE = """
local now, tpm = tonumber(ARGV[1]), tonumber(ARGV[2])
if tpm > 0 then
  local l = tonumber(redis.call('HGET', KEYS[1], 'level'))
  if l then
    local updated = tonumber(redis.call('HGET', KEYS[1], 'updated'))
    l = math.min(tpm, l + math.max(0, now - updated) * tpm / 60)
  else
    l = tpm
  end
  redis.call('HSET', KEYS[1], 'level', l + tonumber(ARGV[3]) - tonumber(ARGV[4]), 'updated', now)
end
redis.call('ZREM', KEYS[2], ARGV[5])
local reserved = tonumber(redis.call('HGET', KEYS[3], 'reserved') or '0')
redis.call('HSET', KEYS[3], 'reserved', tostring(math.max(0, reserved - tonumber(ARGV[6]))))
redis.call('HINCRBYFLOAT', KEYS[3], 'spent', ARGV[7])
return 'ok'
"""


class RedisStore(QuotaStore):
    def __init__(self, url: str) -> None:
        self._redis: redis.Redis = redis.Redis.from_url(url)
        self._reserve = self._redis.register_script(_RESERVE)
        self._settle = self._redis.register_script(_SETTLE)

    def reserve(self, limits: Limits, tokens: int, cost: float) -> Reservation:
        now = self.now()
        period = limits.period_index(now)
        lease = self.new_lease()
        period_end = (period + 1) * limits.period if limits.period else now
        result: Any = self._reserve(
            keys=self._keys(limits, period),
            args=[
                repr(now), limits.rpm, limits.tpm, tokens, limits.max_concurrent,
                repr(limits.budget), repr(cost), lease, repr(now + LEASE_SECONDS),
                repr(period_end), repr(CONCURRENCY_RETRY_SECONDS),
            ],
        )
        verdict = result[0].decode()
        if verdict != "ok":
            raise limit_reached(limits, verdict, float(result[1]))
        return Reservation(limits, tokens, cost, period, lease)

    def settle(self, reservation: Reservation, tokens: int, cost: float) -> None:
        limits = reservation.limits
        rpm_key, tpm_key, leases_key, spend_key = self._keys(limits, reservation.period)
        self._settle(
            keys=[tpm_key, leases_key, spend_key],
            args=[
                repr(self.now()), limits.tpm, reservation.tokens, tokens, reservation.lease,
                repr(reservation.cost), repr(cost),
            ],
        )

    def spend(self, limits: Limits) -> Spend:
        now = self.now()
        period = limits.period_index(now)
        values = self._redis.hmget(self._keys(limits, period)[3], ["spent", "reserved"])
        spent, reserved = (float(v) if v is not None else 0.0 for v in values)
        start = period * limits.period
        return Spend(spent, reserved, start, start + limits.period)

    def close(self) -> None:
        self._redis.close()

    @staticmethod
    def _keys(limits: Limits, period: int) -> list[str]:
        base = f"{PREFIX}{limits.key}:"
        return [base + "rpm", base + "tpm", base + "leases", f"{base}spend:{period}"]
