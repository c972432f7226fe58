"""The `auth:`, `state:`, `prices:` and `usage_log:` sections of config.yaml."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    SecretStr,
    field_validator,
    model_validator,
)

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DEFAULT_STATE_PATH = "ai-router-state.db"


def duration_seconds(text: str) -> int:
    """"30d" -> seconds; units s, m, h, d."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration: write a number and s, m, h or d (30d)")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KeySettings(_Strict):
    name: str = Field(min_length=1)
    key_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    key_env: str | None = None
    key: SecretStr | None = Field(default=None, exclude=True)  # read from key_env at load
    models: tuple[str, ...] = ("*",)
    rpm: PositiveInt | None = None
    tpm: PositiveInt | None = None
    max_concurrent: PositiveInt | None = None
    budget_usd: PositiveFloat | None = None
    budget_period: str = "30d"

    @field_validator("budget_period")
    @classmethod
    def _period(cls, value: str) -> str:
        duration_seconds(value)
        return value

    @model_validator(mode="after")
    def _one_secret(self) -> KeySettings:
        if (self.key_sha256 is None) == (self.key_env is None):
            raise ValueError("give exactly one of key_sha256 and key_env")
        if self.key_env is not None and self.key is None:
            raise ValueError(f"key_env: the environment variable {self.key_env} is not set")
        return self

    @property
    def period_seconds(self) -> int:
        return duration_seconds(self.budget_period)


class AuthSettings(_Strict):
    allow_unauthenticated: bool = False
    admin_key_env: str | None = None
    admin_key: SecretStr | None = Field(default=None, exclude=True)  # read from admin_key_env
    # GET /metrics (the HTTP port's) wants the admin key: the metrics name keys and their spend.
    metrics_need_admin_key: bool = False
    keys: tuple[KeySettings, ...] = ()

    @model_validator(mode="after")
    def _metrics_key(self) -> AuthSettings:
        if self.metrics_need_admin_key and self.admin_key_env is None:
            raise ValueError("metrics_need_admin_key: set admin_key_env too (the key it wants)")
        return self

    @model_validator(mode="after")
    def _unique_names(self) -> AuthSettings:
        names = [key.name for key in self.keys]
        duplicated = sorted({name for name in names if names.count(name) > 1})
        if duplicated:
            raise ValueError(f"key names must be unique; repeated: {', '.join(duplicated)}")
        return self


class StateSettings(_Strict):
    backend: Literal["sqlite", "redis"] = "sqlite"
    path: str = DEFAULT_STATE_PATH  # sqlite: shared by every process of this machine
    url: str = "redis://127.0.0.1:6379/0"  # redis: shared by every replica
    # What a request holds (a concurrency slot, its reserved spend) is renewed while it lives;
    # the holds of a process that died end within this.
    lease_seconds: float = Field(default=10.0, ge=1.0, le=3600.0)
    # How long a request waits for the store before the store counts as unavailable.
    timeout_seconds: float = Field(default=1.0, gt=0.0, le=30.0)
    # The store unreachable: refuse keyed requests (503), or serve them uncounted.
    when_unavailable: Literal["fail_closed", "fail_open"] = "fail_closed"


class Price(_Strict):
    """USD per million tokens."""

    input: NonNegativeFloat
    output: NonNegativeFloat
    cached_input: NonNegativeFloat | None = None
