"""The simulator's deterministic "model": request in, reply tokens and usage out.

The reply is a pure function of the request, so tests can predict every byte. The request is first
validated and reduced to a `Conversation` (openai_request.py, anthropic_request.py); then:

1. The last turn carries tool results (OpenAI: the conversation ends with `tool` messages;
   Anthropic: the last user message has `tool_result` blocks): the text
   `f"Simulated reply from {model}: tool said: {results}"`, the result texts joined with "; ".
2. Else, tools are declared and the tool choice is not "none": one call to the named tool (or the
   first declared), with arguments `json.dumps({"query": last user text})`. Its output tokens are
   the words of that JSON string (at least 1); max_tokens and stop sequences never cut it. Streams
   send the JSON in pieces of at most 8 characters (`ARGUMENT_PIECE`).
3. Else the text `f"Simulated reply from {model}: {last user message text}"`, followed by
   `f" [images: {count}]"` when that message has image parts.

A text is cut by the stop sequences and the token limit. Tokens are whitespace-preserving words
(`"".join(tokens)` gives the text back), which makes token counts easy to reason about in assertions.
Input tokens are the words of every text the model reads (system, messages, tool result texts, the
arguments of earlier tool calls), plus 1 per image, at least 1.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Literal

from .anthropic_request import parse_anthropic
from .conversation import WORD_RE, BadRequest, Conversation, content_text
from .openai_request import parse_openai

__all__ = ["ARGUMENT_PIECE", "BadRequest", "Conversation", "Reply", "ToolCall", "anthropic_reply",
           "compose", "content_text", "openai_reply"]

TOKEN_RE = re.compile(r"\s*\S+")
ARGUMENT_PIECE = 8  # characters of tool call arguments per streamed delta

# Family-neutral stop causes; each wire format names them in its own vocabulary.
Finish = Literal["end", "max_tokens", "stop_sequence", "tool_call"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    name: str
    arguments: str  # JSON text: OpenAI's `arguments`, and what Anthropic's `input` serializes to

    @property
    def input(self) -> object:
        return json.loads(self.arguments)

    @property
    def pieces(self) -> tuple[str, ...]:
        a = self.arguments
        return tuple(a[i:i + ARGUMENT_PIECE] for i in range(0, len(a), ARGUMENT_PIECE))

    @property
    def output_tokens(self) -> int:
        return max(1, len(WORD_RE.findall(self.arguments)))


@dataclass(frozen=True, slots=True)
class Reply:
    model: str
    tokens: tuple[str, ...]  # the text reply's tokens; empty for a tool call
    finish: Finish
    stop_sequence: str | None  # the stop sequence that ended the reply, if one did
    input_tokens: int
    stream: bool
    include_usage: bool  # OpenAI's stream_options.include_usage
    tool_call: ToolCall | None = None

    @property
    def text(self) -> str:
        return "".join(self.tokens)

    @property
    def pieces(self) -> tuple[str, ...]:
        """What a stream sends one delta at a time: text tokens, or pieces of the tool arguments."""
        return self.tool_call.pieces if self.tool_call else self.tokens

    @property
    def output_tokens(self) -> int:
        return self.tool_call.output_tokens if self.tool_call else len(self.tokens)


def compose(c: Conversation) -> Reply:
    if c.tool_results is not None:
        return _compose(c.model, "tool said: " + "; ".join(c.tool_results), c.limit, c.stops,
                        c.input_tokens, c.stream, c.include_usage)
    if c.tool is not None:
        call = ToolCall(c.tool, json.dumps({"query": c.user_text}))
        return Reply(model=c.model, tokens=(), finish="tool_call", stop_sequence=None, input_tokens=c.input_tokens,
                     stream=c.stream, include_usage=c.include_usage, tool_call=call)
    text = c.user_text + (f" [images: {c.images}]" if c.images else "")
    return _compose(c.model, text, c.limit, c.stops, c.input_tokens, c.stream, c.include_usage)


def _compose(model: str, user_text: str, max_tokens: int | None, stops: tuple[str, ...],
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


def openai_reply(body: object) -> Reply:
    """Validate a Chat Completions request and compute its reply."""
    return compose(parse_openai(body))


def anthropic_reply(body: object) -> Reply:
    """Validate a Messages request and compute its reply."""
    return compose(parse_anthropic(body))
