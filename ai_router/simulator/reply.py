"""The simulator's deterministic "model": request in, reply tokens and usage out.

The reply is a pure function of the request, so tests can predict every byte. The request is first
validated and reduced to a `Conversation` (openai_request.py, anthropic_request.py); then:

1. The last turn carries tool results (OpenAI: the conversation ends with `tool` messages;
   Anthropic: the last user message has `tool_result` blocks): the text
   `f"Simulated reply from {model}: tool said: {results}"`, the result texts joined with "; ".
2. Else, tools are declared and the tool choice is not "none": one call to the named tool (or the
   first declared), with arguments `json.dumps({"query": last user text})`, or for a strict tool
   (or one whose schema names properties but no `query`) an instance of its schema whose free
   strings are the last user text. Its output tokens are the words of that JSON string (at least
   1); max_tokens and stop sequences never cut it. Streams
   send the JSON in pieces of at most 8 characters (`ARGUMENT_PIECE`).
3. Else the text `f"Simulated reply from {model}: {last user message text}"`, followed by
   `f" [images: {count}]"` when that message has image parts.

A request for structured output (OpenAI's response_format, Anthropic's output_config.format) gets,
instead of the text of 1 or 3, the JSON of an instance of its schema whose every free string is
that text (json_instance.py); JSON mode gets `{"reply": text}`. An Anthropic request with thinking
gets a thinking block first: `f"Simulated thinking about: {what the text answers}"` (empty when
its display is "omitted"), whose tokens count as output and come off the token limit first.

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

from .anthropic_request import check_budget, parse_anthropic
from .conversation import JSON_MODE_SCHEMA, WORD_RE, BadRequest, Conversation, content_text, require_object
from .json_instance import instance
from .openai_request import parse_openai

__all__ = ["ARGUMENT_PIECE", "BadRequest", "Conversation", "Piece", "Reply", "ToolCall",
           "anthropic_reply", "compose", "content_text", "openai_reply"]

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
class Piece:
    """What a stream sends in one delta: a token of the thinking, a token of the text, or a piece
    of the tool call's arguments. `opens` marks the first piece of its block."""

    kind: Literal["thinking", "text", "arguments"]
    text: str
    opens: bool = False


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
    thinking: tuple[str, ...] | None = None  # the thinking block's tokens; None: no block
    thinking_tokens: int = 0  # what the thinking cost, shown or not

    @property
    def text(self) -> str:
        return "".join(self.tokens)

    @property
    def thinking_text(self) -> str:
        return "".join(self.thinking or ())

    @property
    def pieces(self) -> tuple[Piece, ...]:
        """What a stream sends one delta at a time: thinking tokens, then text tokens or pieces of
        the tool arguments."""
        thinking = tuple(Piece("thinking", token) for token in self.thinking or ())
        if self.tool_call:
            rest = tuple(Piece("arguments", piece) for piece in self.tool_call.pieces)
        else:
            rest = tuple(Piece("text", token) for token in self.tokens)
        if self.thinking is not None and rest:
            rest = (Piece(rest[0].kind, rest[0].text, opens=True), *rest[1:])
        return thinking + rest

    @property
    def output_tokens(self) -> int:
        answer = self.tool_call.output_tokens if self.tool_call else len(self.tokens)
        return self.thinking_tokens + answer


def compose(c: Conversation) -> Reply:
    if c.tool_results is not None:
        subject = "tool said: " + "; ".join(c.tool_results)
    else:
        subject = c.user_text + (f" [images: {c.images}]" if c.images else "")
    thinking = TOKEN_RE.findall(f"Simulated thinking about: {subject}") if c.thinking else []
    shown = tuple(thinking) if c.thinking == "summarized" else () if c.thinking else None
    if c.tool_results is None and c.tool is not None:
        # A strict tool's arguments match its schema, as constrained decoding makes them.
        arguments = {"query": c.user_text} if c.tool_schema is None else instance(c.tool_schema, c.user_text)
        call = ToolCall(c.tool, json.dumps(arguments))
        return Reply(model=c.model, tokens=(), finish="tool_call", stop_sequence=None, input_tokens=c.input_tokens,
                     stream=c.stream, include_usage=c.include_usage, tool_call=call, thinking=shown,
                     thinking_tokens=len(thinking))
    text = f"Simulated reply from {c.model}: {subject}"
    if c.json_schema is not None:
        text = json.dumps(instance(c.json_schema or JSON_MODE_SCHEMA, text))
    # Thinking counts against the limit before the answer does.
    limit = None if c.limit is None else max(0, c.limit - len(thinking))
    tokens, finish, matched = _cut(text, limit, c.stops)
    return Reply(model=c.model, tokens=tokens, finish=finish, stop_sequence=matched, input_tokens=c.input_tokens,
                 stream=c.stream, include_usage=c.include_usage, thinking=shown, thinking_tokens=len(thinking))


def _cut(text: str, max_tokens: int | None, stops: tuple[str, ...]) -> tuple[tuple[str, ...], Finish, str | None]:
    """The text's tokens, cut by the earliest stop sequence and then by the limit."""
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
    return tuple(tokens), finish, matched


def openai_reply(body: object) -> Reply:
    """Validate a Chat Completions request and compute its reply."""
    return compose(parse_openai(body))


def anthropic_reply(body: object) -> Reply:
    """Validate a Messages request and compute its reply."""
    conversation = parse_anthropic(body)
    check_budget(require_object(body), conversation.limit)
    return compose(conversation)
