"""The simulator's scriptable state: timing knobs, the fault queue and the recorded requests.

Tests steer the simulator through this state (via the `/_sim` control API or directly through
`server.state`), so every mutation goes through one lock: handler threads read it concurrently.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections import deque
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal, Mapping

Family = Literal["openai", "anthropic", "gemini", "bedrock"]
FAMILIES: tuple[Family, ...] = ("openai", "anthropic", "gemini", "bedrock")

# What `GET /v1/models` lists. The simulator answers for any model name; this is only the catalogue.
DEFAULT_MODELS: tuple[str, ...] = ("gpt-4o-mini", "claude-sonnet-4-5")

# The knobs that `POST /_sim/settings` may change at runtime.
TIMING_KNOBS: tuple[str, ...] = ("latency", "ttft", "token_rate")


def _non_negative_number(name: str, value: object) -> float:
    # bool is an int subclass; `true` as a latency is a caller bug, not 1 second.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a number")
    if value < 0:
        raise ValueError(f"{name} must be >= 0")
    return float(value)


def _non_negative_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0")
    return value


@dataclass
class SimulatorSettings:
    """Timing knobs, all in seconds except `token_rate`.

    latency:    wait before the response headers are sent.
    ttft:       wait after the headers before the first streamed token.
    token_rate: streamed tokens (or tool-argument pieces) per second; 0 sends them back to back.
    A non-stream answer waits `latency + ttft + pieces / token_rate` in total, as long as its stream.
    """

    latency: float = 0.0
    ttft: float = 0.0
    token_rate: float = 0.0
    models: tuple[str, ...] = DEFAULT_MODELS
    # False: requests without a key are answered, as a local server (Ollama, vLLM) answers them.
    require_key: bool = True

    def updated(self, changes: Mapping[str, Any]) -> SimulatorSettings:
        """A copy with `changes` (a subset of TIMING_KNOBS) applied; ValueError on bad input."""
        unknown = sorted(set(changes) - set(TIMING_KNOBS))
        if unknown:
            raise ValueError(f"unknown settings: {', '.join(unknown)}")
        numbers: dict[str, Any] = {k: _non_negative_number(k, v) for k, v in changes.items()}
        return replace(self, **numbers)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["models"] = list(self.models)
        return data


@dataclass(frozen=True)
class Fault:
    """One scripted misbehaviour, consumed by exactly one upstream request.

    `delay` may accompany any other kind; of `status`, `reset_after_tokens`,
    `error_event_after_tokens` and `garbled_after_tokens` at most one is set.
    """

    family: Family | None = None  # None: the next request of either family takes it
    delay: float = 0.0
    status: int | None = None
    retry_after: float | None = None
    message: str | None = None
    # With `status`, an error the wire format names by code: "content_filter" (Azure OpenAI's
    # content-filter refusal, on its paths).
    code: Literal["content_filter"] | None = None
    reset_after_tokens: int | None = None
    error_event_after_tokens: int | None = None
    # After this many tokens, an event whose data is not JSON, then the end of the stream; a
    # non-stream request gets a 200 whose body is not JSON.
    garbled_after_tokens: int | None = None

    @classmethod
    def from_json(cls, obj: object) -> Fault:
        if not isinstance(obj, dict):
            raise ValueError("a fault must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(obj) - known)
        if unknown:
            # Strict on purpose: a misspelt key would otherwise make a test pass for the wrong reason.
            raise ValueError(f"unknown fault keys: {', '.join(unknown)}")
        family = obj.get("family")
        if family is not None and family not in FAMILIES:
            raise ValueError(f"family must be one of {', '.join(FAMILIES)}")
        status = obj.get("status")
        if status is not None and (isinstance(status, bool) or not isinstance(status, int)
                                   or not 400 <= status <= 599):
            raise ValueError("status must be an integer HTTP error status (400-599)")
        message = obj.get("message")
        if message is not None and not isinstance(message, str):
            raise ValueError("message must be a string")
        retry_after = obj.get("retry_after")
        code = obj.get("code")
        if code is not None and (code != "content_filter" or status is None):
            raise ValueError('code must be "content_filter", and goes with status')
        fault = cls(
            family=family,
            delay=_non_negative_number("delay", obj.get("delay", 0.0)),
            status=status,
            retry_after=None if retry_after is None else _non_negative_number("retry_after", retry_after),
            message=message,
            code=code,
            reset_after_tokens=None if obj.get("reset_after_tokens") is None
            else _non_negative_int("reset_after_tokens", obj["reset_after_tokens"]),
            error_event_after_tokens=None if obj.get("error_event_after_tokens") is None
            else _non_negative_int("error_event_after_tokens", obj["error_event_after_tokens"]),
            garbled_after_tokens=None if obj.get("garbled_after_tokens") is None
            else _non_negative_int("garbled_after_tokens", obj["garbled_after_tokens"]),
        )
        kinds = [k for k in (fault.status, fault.reset_after_tokens, fault.error_event_after_tokens,
                             fault.garbled_after_tokens) if k is not None]
        if len(kinds) > 1:
            raise ValueError("a fault sets at most one of status, reset_after_tokens, "
                             "error_event_after_tokens, garbled_after_tokens")
        if not kinds and fault.delay == 0:
            raise ValueError("a fault needs delay, status, reset_after_tokens, error_event_after_tokens "
                             "or garbled_after_tokens")
        if fault.retry_after is not None and fault.status is None:
            raise ValueError("retry_after only goes with status")
        return fault

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None and not (k == "delay" and v == 0)}


@dataclass
class SimState:
    """Everything the handlers share. Public methods are atomic with respect to each other."""

    initial: SimulatorSettings
    _settings: SimulatorSettings = field(init=False)
    _faults: deque[Fault] = field(init=False, default_factory=deque)
    _requests: list[dict[str, Any]] = field(init=False, default_factory=list)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    _ids: itertools.count[int] = field(init=False, default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        # Own copies, so a caller mutating the object it passed in changes nothing behind our back.
        self.initial = replace(self.initial)
        self._settings = replace(self.initial)

    @property
    def settings(self) -> SimulatorSettings:
        with self._lock:
            return replace(self._settings)

    def update_settings(self, changes: Mapping[str, Any]) -> SimulatorSettings:
        with self._lock:
            self._settings = self._settings.updated(changes)
            return replace(self._settings)

    def add_faults(self, faults: list[Fault]) -> list[Fault]:
        with self._lock:
            self._faults.extend(faults)
            return list(self._faults)

    def pending_faults(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def take_fault(self, family: Family) -> Fault | None:
        """Pop the oldest fault meant for `family` (or for any family); faults for the other
        family stay queued in order."""
        with self._lock:
            for fault in self._faults:
                if fault.family is None or fault.family == family:
                    self._faults.remove(fault)
                    return fault
            return None

    def record(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._requests.append(request)
            return request

    def mark_closed_early(self, request: dict[str, Any]) -> None:
        """The client hung up before the answer was complete."""
        with self._lock:
            request["closed_early"] = True

    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(request) for request in self._requests]

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def reset(self) -> SimulatorSettings:
        with self._lock:
            self._requests.clear()
            self._faults.clear()
            self._settings = replace(self.initial)
            return replace(self._settings)

    def next_id(self) -> int:
        with self._lock:
            return next(self._ids)
