"""The simulator's deterministic "model": request in, reply tokens and usage out.

The reply is a pure function of the request, so tests can predict every byte:
`f"Simulated reply from {model}: {last user message text}"`, cut by the stop sequences and the
token limit. Tokens are whitespace-preserving words (`"".join(tokens)` gives the text back), which
makes token counts easy to reason about in assertions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

TOKEN_RE = re.compile(r"\s*\S+")
WORD_RE = re.compile(r"\S+")

# Family-neutral stop causes; each wire format names them in its own vocabulary.
Finish = Literal["end", "max_tokens", "stop_sequence"]


class BadRequest(Exception):
    """The request is invalid; answered as a 400 in the family's error format."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(frozen=True, slots=True)
class Reply:
    model: str
    tokens: tuple[str, ...]
    finish: Finish
    stop_sequence: str | None  # the stop sequence that ended the reply, if one did
    input_tokens: int
    stream: bool
    include_usage: bool  # OpenAI's stream_options.include_usage

    @property
    def text(self) -> str:
        return "".join(self.tokens)

    @property
    def output_tokens(self) -> int:
        return len(self.tokens)


def content_text(content: object) -> str:
    """Text of a message content: a string, or the concatenated `text` parts of a block list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p["text"] for p in content
                       if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str))
    return ""


def _word_count(texts: list[str]) -> int:
    # At least 1: a real tokenizer never reports an empty prompt, and routers divide by it.
    return max(1, sum(len(WORD_RE.findall(t)) for t in texts))


def _require_object(body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return body


def _require_model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("model: field required (a non-empty string)", "model")
    return model


def _require_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise BadRequest("messages: field required (a non-empty list of message objects)", "messages")
    return messages


def _optional_limit(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequest(f"{name}: must be an integer >= 1", name)
    return value


def _stop_list(value: object, name: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise BadRequest(f"{name}: must be a string or a list of strings", name)
    return [s for s in value if s]  # an empty stop would match at 0 and end every reply at once


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return content_text(message.get("content"))
    return ""


def _compose(model: str, user_text: str, max_tokens: int | None, stops: list[str],
             input_tokens: int, stream: bool, include_usage: bool) -> Reply:
    text = f"Simulated reply from {model}: {user_text}"
    finish: Finish = "end"
    matched: str | None = None
    hits = [(text.find(s), i, s) for i, s in enumerate(stops) if s in text]
    if hits:
        # The earliest occurrence wins, as it would for a model generating left to right.
        at, _, matched = min(hits)
        text, finish = text[:at], "stop_sequence"
    tokens = TOKEN_RE.findall(text)
    tail = text[sum(map(len, tokens)):]
    if tail:
        # Whitespace left before a stop sequence has no word to lead; glue it to the last token so
        # that "".join(tokens) is still exactly the text cut before the stop.
        tokens = tokens[:-1] + [tokens[-1] + tail] if tokens else [tail]
    if max_tokens is not None and len(tokens) > max_tokens:
        # The limit is hit before the stop sequence would have been generated.
        tokens, finish, matched = tokens[:max_tokens], "max_tokens", None
    return Reply(model=model, tokens=tuple(tokens), finish=finish, stop_sequence=matched,
                 input_tokens=input_tokens, stream=stream, include_usage=include_usage)


def _stream_flag(body: dict[str, Any]) -> bool:
    stream = body.get("stream", False)
    if stream is None:
        return False
    if not isinstance(stream, bool):
        raise BadRequest("stream: must be a boolean", "stream")
    return stream


def openai_reply(body: object) -> Reply:
    """Validate a Chat Completions request and compute its reply."""
    body = _require_object(body)
    model = _require_model(body)
    messages = _require_messages(body)
    # max_completion_tokens supersedes the deprecated max_tokens, as in the real API.
    limit = _optional_limit(body, "max_completion_tokens")
    if limit is None:
        limit = _optional_limit(body, "max_tokens")
    stops = _stop_list(body.get("stop"), "stop")
    stream = _stream_flag(body)
    options = body.get("stream_options")
    include_usage = stream and isinstance(options, dict) and options.get("include_usage") is True
    # System and developer turns are ordinary messages here, so they count as input too.
    input_tokens = _word_count([content_text(m.get("content")) for m in messages])
    return _compose(model, _last_user_text(messages), limit, stops, input_tokens, stream, include_usage)


def anthropic_reply(body: object) -> Reply:
    """Validate a Messages request and compute its reply."""
    body = _require_object(body)
    model = _require_model(body)
    messages = _require_messages(body)
    if body.get("max_tokens") is None:
        raise BadRequest("max_tokens: Field required", "max_tokens")
    limit = _optional_limit(body, "max_tokens")
    stops = _stop_list(body.get("stop_sequences"), "stop_sequences")
    stream = _stream_flag(body)
    texts = [content_text(body.get("system"))] + [content_text(m.get("content")) for m in messages]
    return _compose(model, _last_user_text(messages), limit, stops, _word_count(texts), stream, False)
