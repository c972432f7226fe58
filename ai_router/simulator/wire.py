"""The two upstream wire formats as the simulator speaks them: JSON bodies, error bodies and SSE
events.

Each family is one object with the same interface, so the HTTP handler never branches on the
family. The vocabulary (stop reasons, error types, event names, framing) is the router's own
(ai_router/wire/), so the router and its simulator cannot disagree on it; the real SDKs must parse
every byte.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Protocol

from ai_router.wire import anthropic_messages, openai_chat, sse

from .reply import Piece, Reply, anthropic_reply, openai_reply
from .script import Family


# What a `garbled_after_tokens` fault sends where JSON belongs: a document cut short.
GARBLED = b'{"id": "garbled", "choices": [{"delta": {"content": "cut sh'


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class Turn:
    """One answered request: the reply plus the identity every chunk of its stream repeats."""

    reply: Reply
    id: str
    created: int
    tool_call_id: str  # the id of the reply's tool call, when it makes one


class Wire(Protocol):
    family: Family
    request_id_header: str
    # The status a non-stream request gets when scripted with an in-stream error fault.
    stream_error_status: int
    def parse(self, body: object) -> Reply: ...
    def new_turn(self, reply: Reply, n: int) -> Turn: ...
    def error_body(self, status: int, message: str, param: str | None = None) -> dict[str, Any]: ...
    def message(self, turn: Turn) -> dict[str, Any]: ...
    def stream_head(self, turn: Turn) -> list[bytes]: ...
    def stream_token(self, turn: Turn, piece: Piece) -> bytes: ...
    def stream_tail(self, turn: Turn) -> list[bytes]: ...
    def stream_error(self, message: str | None) -> bytes: ...
    def garbled_event(self) -> bytes: ...


class OpenAIWire:
    family: Family = "openai"
    request_id_header = openai_chat.REQUEST_ID_HEADER
    stream_error_status = 500
    parse = staticmethod(openai_reply)

    _FINISH = {
        "end": openai_chat.STOP,
        "stop_sequence": openai_chat.STOP,
        "max_tokens": openai_chat.LENGTH,
        "tool_call": openai_chat.TOOL_CALLS,
    }
    # The `code` OpenAI gives some errors, beside their type.
    _CODES: dict[int, str] = {401: "invalid_api_key", 404: "not_found", 429: "rate_limit_exceeded"}

    def new_turn(self, reply: Reply, n: int) -> Turn:
        return Turn(reply, f"chatcmpl-sim-{n}", int(time.time()), f"call_sim_{n}")

    def error_body(self, status: int, message: str, param: str | None = None) -> dict[str, Any]:
        kind, code = openai_chat.error_type(status), self._CODES.get(status)
        return {"error": {"message": message, "type": kind, "param": param, "code": code}}

    def message(self, turn: Turn) -> dict[str, Any]:
        r = turn.reply
        return {
            "id": turn.id,
            "object": "chat.completion",
            "created": turn.created,
            "model": r.model,
            "choices": [{
                "index": 0,
                "message": self._message_body(turn),
                "finish_reason": self._FINISH[r.finish],
                "logprobs": None,
            }],
            "usage": self._usage(r),
        }

    @staticmethod
    def _message_body(turn: Turn) -> dict[str, Any]:
        call = turn.reply.tool_call
        if call is None:
            return {"role": "assistant", "content": turn.reply.text, "refusal": None}
        return {"role": "assistant", "content": None, "refusal": None, "tool_calls": [{
            "id": turn.tool_call_id, "type": "function", "function": {"name": call.name, "arguments": call.arguments},
        }]}

    def models(self, ids: tuple[str, ...]) -> dict[str, Any]:
        return {"object": "list",
                "data": [{"id": m, "object": "model", "created": 0, "owned_by": "ai-router-simulator"} for m in ids]}

    def stream_head(self, turn: Turn) -> list[bytes]:
        call = turn.reply.tool_call
        if call is None:
            return [self._chunk(turn, {"role": "assistant", "content": ""})]
        # Before tool calls OpenAI sends `content: null`, then the call's id and name with empty arguments.
        header = {"index": 0, "id": turn.tool_call_id, "type": "function",
                  "function": {"name": call.name, "arguments": ""}}
        return [self._chunk(turn, {"role": "assistant", "content": None}),
                self._chunk(turn, {"tool_calls": [header]})]

    def stream_token(self, turn: Turn, piece: Piece) -> bytes:
        # OpenAI's Chat Completions sends no reasoning text, so a reply here never has thinking.
        if piece.kind == "arguments":
            return self._chunk(turn, {"tool_calls": [{"index": 0, "function": {"arguments": piece.text}}]})
        return self._chunk(turn, {"content": piece.text})

    def stream_tail(self, turn: Turn) -> list[bytes]:
        r = turn.reply
        events = [self._chunk(turn, {}, self._FINISH[r.finish])]
        if r.include_usage:
            events.append(self._event({**self._chunk_base(turn), "choices": [], "usage": self._usage(r)}))
        events.append(sse.DONE)
        return events

    def stream_error(self, message: str | None) -> bytes:
        # No [DONE] after it: the SDK raises APIError on the chunk with an "error" key.
        return self._event(self.error_body(500, message or "The server had an error while processing your request."))

    def garbled_event(self) -> bytes:
        return sse.frame(GARBLED)

    @staticmethod
    def _usage(r: Reply) -> dict[str, int]:
        return {"prompt_tokens": r.input_tokens, "completion_tokens": r.output_tokens,
                "total_tokens": r.input_tokens + r.output_tokens}

    @staticmethod
    def _event(obj: object) -> bytes:
        return sse.frame(_dumps(obj))

    @staticmethod
    def _chunk_base(turn: Turn) -> dict[str, Any]:
        base = {"id": turn.id, "object": "chat.completion.chunk", "created": turn.created, "model": turn.reply.model}
        if turn.reply.include_usage:
            base["usage"] = None  # the real API sends `usage: null` on every chunk but the last
        return base

    def _chunk(self, turn: Turn, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return self._event({**self._chunk_base(turn), "choices": [choice]})


class AnthropicWire:
    family: Family = "anthropic"
    request_id_header = anthropic_messages.REQUEST_ID_HEADER
    stream_error_status = 529
    parse = staticmethod(anthropic_reply)

    _STOP: dict[str, anthropic_messages.StopReason] = {
        "end": "end_turn",
        "stop_sequence": "stop_sequence",
        "max_tokens": "max_tokens",
        "tool_call": "tool_use",
    }

    def new_turn(self, reply: Reply, n: int) -> Turn:
        return Turn(reply, f"msg_sim_{n}", int(time.time()), f"toolu_sim_{n}")

    def error_body(self, status: int, message: str, param: str | None = None) -> dict[str, Any]:
        kind = anthropic_messages.error_type(status)
        return {"type": "error", "error": {"type": kind, "message": message}}

    def message(self, turn: Turn) -> dict[str, Any]:
        r = turn.reply
        thinking = [] if r.thinking is None else [self._thinking_block(turn, start=False)]
        return {
            "id": turn.id,
            "type": "message",
            "role": "assistant",
            "model": r.model,
            "content": [*thinking, self._block(turn, start=False)],
            "stop_reason": self._STOP[r.finish],
            "stop_sequence": r.stop_sequence,
            "usage": {"input_tokens": r.input_tokens, "output_tokens": r.output_tokens},
        }

    def stream_head(self, turn: Turn) -> list[bytes]:
        r = turn.reply
        start: dict[str, Any] = {"id": turn.id, "type": "message", "role": "assistant", "model": r.model, "content": [],
                 "stop_reason": None, "stop_sequence": None,
                 "usage": {"input_tokens": r.input_tokens, "output_tokens": 0}}
        return [
            self._event(anthropic_messages.MESSAGE_START, {"type": anthropic_messages.MESSAGE_START, "message": start}),
            self._block_start(0, self._thinking_block(turn, start=True) if r.thinking is not None
                              else self._block(turn, start=True)),
            self._event(anthropic_messages.PING, {"type": anthropic_messages.PING}),
        ]

    def stream_token(self, turn: Turn, piece: Piece) -> bytes:
        index = 1 if turn.reply.thinking is not None and piece.kind != "thinking" else 0
        events = b""
        if piece.opens:
            # The answer's first piece ends the thinking block and opens its own.
            events = self._end_thinking(turn) + self._block_start(index, self._block(turn, start=True))
        if piece.kind == "thinking":
            delta = {"type": "thinking_delta", "thinking": piece.text}
        elif piece.kind == "arguments":
            delta = {"type": "input_json_delta", "partial_json": piece.text}
        else:
            delta = {"type": "text_delta", "text": piece.text}
        return events + self._delta(index, delta)

    def _delta(self, index: int, delta: dict[str, Any]) -> bytes:
        return self._event(anthropic_messages.CONTENT_BLOCK_DELTA,
                           {"type": anthropic_messages.CONTENT_BLOCK_DELTA, "index": index, "delta": delta})

    def _block_start(self, index: int, block: dict[str, Any]) -> bytes:
        return self._event(anthropic_messages.CONTENT_BLOCK_START,
                           {"type": anthropic_messages.CONTENT_BLOCK_START, "index": index, "content_block": block})

    def _end_thinking(self, turn: Turn) -> bytes:
        """The thinking block's signature, just before its content_block_stop, as the API sends it."""
        signature = {"type": "signature_delta", "signature": self._signature(turn)}
        return self._delta(0, signature) + self._event(
            anthropic_messages.CONTENT_BLOCK_STOP, {"type": anthropic_messages.CONTENT_BLOCK_STOP, "index": 0})

    @staticmethod
    def _signature(turn: Turn) -> str:
        return f"sim-signature-{turn.id}"

    def _thinking_block(self, turn: Turn, *, start: bool) -> dict[str, Any]:
        if start:
            return {"type": "thinking", "thinking": "", "signature": ""}
        return {"type": "thinking", "thinking": turn.reply.thinking_text, "signature": self._signature(turn)}

    @staticmethod
    def _block(turn: Turn, *, start: bool) -> dict[str, Any]:
        """The reply's one content block, whole or (start) as a stream's content_block_start has it."""
        call = turn.reply.tool_call
        if call is None:
            return {"type": "text", "text": "" if start else turn.reply.text}
        return {"type": "tool_use", "id": turn.tool_call_id, "name": call.name, "input": {} if start else call.input}

    def stream_tail(self, turn: Turn) -> list[bytes]:
        r = turn.reply
        answered = any(piece.opens for piece in r.pieces)
        if r.thinking is not None and not answered:
            # Nothing of the answer came (the limit went to thinking): its block opens empty.
            close = self._end_thinking(turn) + self._block_start(1, self._block(turn, start=True))
        else:
            close = b""
        last = 1 if r.thinking is not None else 0
        return [
            close + self._event(anthropic_messages.CONTENT_BLOCK_STOP,
                                {"type": anthropic_messages.CONTENT_BLOCK_STOP, "index": last}),
            self._event(anthropic_messages.MESSAGE_DELTA, {
                "type": anthropic_messages.MESSAGE_DELTA,
                "delta": {"stop_reason": self._STOP[r.finish], "stop_sequence": r.stop_sequence},
                # Cumulative counts, input included, as the real API reports them.
                "usage": {"input_tokens": r.input_tokens, "output_tokens": r.output_tokens},
            }),
            self._event(anthropic_messages.MESSAGE_STOP, {"type": anthropic_messages.MESSAGE_STOP}),
        ]

    def stream_error(self, message: str | None) -> bytes:
        return self._event(anthropic_messages.ERROR, self.error_body(529, message or "Overloaded"))

    def garbled_event(self) -> bytes:
        return sse.frame(GARBLED, anthropic_messages.CONTENT_BLOCK_DELTA)

    @staticmethod
    def _event(name: str, obj: object) -> bytes:
        # The SDK dispatches on the `event:` line and drops events without one.
        return sse.frame(_dumps(obj), name)


OPENAI = OpenAIWire()
ANTHROPIC = AnthropicWire()
