"""Building a validated ChatRequest from the fields the native front doors share.

gRPC's AIRequest and HTTP's /generate and /stream bodies carry the same things: a prompt or a list
of messages, a system prompt, max tokens, typed sampling options and a free-form `parameters` map
whose values may be strings ("0.25") or JSON values. The rules live here once, so both doors accept
and refuse exactly the same requests with the same messages.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from ai_router.errors import InvalidRequest, UnknownParameter
from ai_router.types import ChatRequest, Message, Part, Role, Sampling, Tool, ToolCall, ToolChoice

MAX_STOP_SEQUENCES = 4
# The most tokens any request may ask for, or sample from: more than any model has, and what the
# gRPC fields (int32) and every provider's JSON can carry.
MAX_TOKENS_LIMIT = 2**31 - 1
_CHAT_ROLES: dict[str, Role] = {"user": "user", "assistant": "assistant", "tool": "tool"}
_SYSTEM_ROLES = ("system", "developer")


@dataclass(frozen=True, slots=True)
class RawMessage:
    """A message as a front door received it, role not yet checked."""

    role: str
    content: str | tuple[Part, ...]
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str = ""
    is_error: bool = False


def build_chat_request(
    *,
    provider: str = "",
    model: str = "",
    prompt: str = "",
    messages: Sequence[RawMessage] = (),
    system: str = "",
    max_tokens: int | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    top_k: int | None = None,
    stop: Sequence[str] = (),
    parameters: Mapping[str, object] | None = None,
    tools: Sequence[Tool] = (),
    tool_choice: str = "",
    parallel_tool_calls: bool | None = None,
    user: str = "",
    timeout: float | None = None,
    request_id: str = "",
) -> ChatRequest:
    """Validate and assemble a request; raises InvalidRequest naming the offending field."""
    system_parts = [system] if system else []
    chat: list[Message] = []
    for index, message in enumerate(messages):
        if message.role in _SYSTEM_ROLES:
            system_parts.append(_system_text(message, index))
        elif message.role in _CHAT_ROLES:
            chat.append(_chat_message(message, index))
        else:
            raise InvalidRequest(
                f"messages[{index}].role must be one of system, developer, user, assistant, "
                f"tool; got {message.role!r}",
                param=f"messages[{index}].role",
            )
    if prompt and messages:
        raise InvalidRequest("give either `prompt` or `messages`, not both", param="prompt")
    if prompt:
        chat.append(Message("user", prompt))
    if not chat:
        raise InvalidRequest(
            "the request has nothing to answer: set `prompt`, or `messages` with at least one "
            "user message",
            param="prompt",
        )
    check_max_tokens(max_tokens)

    typed: dict[str, Any] = {
        key: value
        for key, value in {"temperature": temperature, "top_p": top_p, "top_k": top_k}.items()
        if value is not None
    }
    if stop:
        typed["stop"] = tuple(stop)
    from_parameters = parse_parameters(parameters or {})
    both = sorted(set(typed) & set(from_parameters))
    if both:
        raise InvalidRequest(
            f"{both[0]} is set both as a field and in parameters; set it once",
            param=f"parameters.{both[0]}",
        )
    sampling = _sampling({**typed, **from_parameters})
    return ChatRequest(
        messages=tuple(chat),
        provider=provider,
        model=model,
        system="\n".join(system_parts),
        max_tokens=max_tokens,
        sampling=sampling,
        tools=tuple(tools),
        tool_choice=_tool_choice(tool_choice, tools),
        parallel_tool_calls=parallel_tool_calls,
        user=user,
        timeout=timeout,
        request_id=request_id,
    )


def _system_text(message: RawMessage, index: int) -> str:
    if not isinstance(message.content, str):
        raise InvalidRequest(
            f"messages[{index}] is a {message.role} message: give it text `content`, not parts",
            param=f"messages[{index}].parts",
        )
    return message.content


def _chat_message(message: RawMessage, index: int) -> Message:
    role = _CHAT_ROLES[message.role]
    if message.tool_calls and role != "assistant":
        raise InvalidRequest(
            f"messages[{index}].tool_calls: only assistant messages carry tool calls",
            param=f"messages[{index}].tool_calls",
        )
    if (role == "tool") != bool(message.tool_call_id):
        raise InvalidRequest(
            f"messages[{index}].tool_call_id is required on tool messages and only there",
            param=f"messages[{index}].tool_call_id",
        )
    return Message(
        role, message.content, message.tool_calls, message.tool_call_id, message.is_error
    )


def _tool_choice(choice: str, tools: Sequence[Tool]) -> ToolChoice | None:
    if not choice:
        return None
    if choice in ("auto", "none", "required"):
        return ToolChoice(choice)  # type: ignore[arg-type]
    if choice not in {tool.name for tool in tools}:
        raise InvalidRequest(
            f"tool_choice {choice!r} names no declared tool; use auto, none, required or a "
            "tool's name",
            param="tool_choice",
        )
    return ToolChoice("tool", choice)


def parse_parameters(parameters: Mapping[str, object]) -> dict[str, Any]:
    """Turn a parameters map (values as strings or JSON values) into typed sampling options."""
    parsed: dict[str, Any] = {}
    for key, value in parameters.items():
        parser = _PARAMETER_PARSERS.get(key)
        if parser is None:
            known = ", ".join(sorted(_PARAMETER_PARSERS))
            raise UnknownParameter(
                f"parameters.{key} is not a known parameter; known: {known}",
                param=f"parameters.{key}",
            )
        parsed[key] = parser(key, value)
    return parsed


def _sampling(values: Mapping[str, Any]) -> Sampling:
    return check_sampling(Sampling(**values))


def check_max_tokens(value: int | None, param: str = "max_tokens") -> int | None:
    """Refuse a token limit below 1 or above MAX_TOKENS_LIMIT."""
    if value is not None and value < 1:
        raise InvalidRequest(f"{param} must be at least 1; got {value}", param=param)
    if value is not None and value > MAX_TOKENS_LIMIT:
        raise InvalidRequest(f"{param} must be at most {MAX_TOKENS_LIMIT}; got {value}", param=param)
    return value


def check_sampling(sampling: Sampling) -> Sampling:
    """Refuse sampling options out of the range any provider accepts."""
    _check_range("temperature", sampling.temperature, 0.0, 2.0)
    _check_range("top_p", sampling.top_p, 0.0, 1.0)
    top_k = sampling.top_k
    if top_k is not None and not 1 <= top_k <= MAX_TOKENS_LIMIT:
        raise InvalidRequest(
            f"top_k must be between 1 and {MAX_TOKENS_LIMIT}; got {top_k}", param="top_k"
        )
    if len(sampling.stop) > MAX_STOP_SEQUENCES or any(not s for s in sampling.stop):
        raise InvalidRequest(
            f"stop takes 1 to {MAX_STOP_SEQUENCES} non-empty sequences", param="stop"
        )
    return sampling


def _check_range(name: str, value: float | None, low: float, high: float) -> None:
    if value is not None and not (low <= value <= high):
        raise InvalidRequest(f"{name} must be between {low:g} and {high:g}; got {value:g}", name)


def _parse_float(key: str, value: object) -> float:
    try:
        number = float(value) if isinstance(value, (str, int, float)) else math.nan
    except ValueError:
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number):
        raise InvalidRequest(
            f"parameters.{key} must be a number; got {value!r}", param=f"parameters.{key}"
        )
    return number


def _parse_int(key: str, value: object) -> int:
    number = _parse_float(key, value)
    if not number.is_integer():
        raise InvalidRequest(
            f"parameters.{key} must be a whole number; got {value!r}", param=f"parameters.{key}"
        )
    return int(number)


def _parse_stop(key: str, value: object) -> tuple[str, ...]:
    # A string map can only carry one string: a JSON list in it is read as the list (orjson:
    # its depth limit makes a deeply nested one a ValueError, not a RecursionError).
    if isinstance(value, str) and value.startswith("["):
        try:
            value = orjson.loads(value)
        except ValueError:
            pass
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise InvalidRequest(
        f"parameters.{key} must be a string or a list of strings; got {value!r}",
        param=f"parameters.{key}",
    )


_PARAMETER_PARSERS: dict[str, Callable[[str, object], Any]] = {
    "temperature": _parse_float,
    "top_p": _parse_float,
    "top_k": _parse_int,
    "stop": _parse_stop,
}
