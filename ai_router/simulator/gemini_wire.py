"""Gemini's generateContent wire as the simulator speaks it (the Wire interface of wire.py).

A stream is `data:` events only, each a whole GenerateContentResponse carrying the pieces
generated since the last one and the usage so far; the last adds the finishReason. A function
call is never sent in pieces: it comes whole with the last event (each argument piece the
other families stream is an event with only the usage here, so pacing and faults count alike).
Function calls carry a thoughtSignature, as Gemini 3's do, so that tests see it come back.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from ai_router.wire import gemini_generate as gemini
from ai_router.wire import sse

from .gemini_request import gemini_reply
from .reply import Piece, Reply
from .script import Family
from .wire import GARBLED, Turn


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


class GeminiWire:
    family: Family = "gemini"
    request_id_header = "x-request-id"
    stream_error_status = 503
    parse = staticmethod(gemini_reply)

    _FINISH: dict[str, gemini.FinishReasonName] = {
        "end": "STOP",
        "stop_sequence": "STOP",
        "max_tokens": "MAX_TOKENS",
        "tool_call": "STOP",
    }

    def new_turn(self, reply: Reply, n: int) -> Turn:
        return Turn(reply, f"sim-response-{n}", int(time.time()), f"sim-call-{n}")

    def error_body(self, status: int, message: str, param: str | None = None) -> dict[str, Any]:
        error: dict[str, Any] = {"code": status, "message": message, "status": gemini.status_name(status)}
        if param:
            error["details"] = [{
                "@type": gemini.BAD_REQUEST,
                "fieldViolations": [{"field": param, "description": message}],
            }]
        return {"error": error}

    def message(self, turn: Turn) -> dict[str, Any]:
        r = turn.reply
        parts: list[dict[str, Any]] = []
        if r.thinking is not None and r.thinking_text:
            parts.append({"text": r.thinking_text, "thought": True})
        parts.append(self._call(turn) if r.tool_call else {"text": r.text})
        return self._response(turn, parts, self._FINISH[r.finish], r.output_tokens)

    def stream_head(self, turn: Turn) -> list[bytes]:
        return []

    def stream_token(self, turn: Turn, piece: Piece) -> bytes:
        r = turn.reply
        sent = self._tokens_through(r, piece)
        if piece.kind == "arguments":
            return self._event(self._response(turn, None, None, sent))
        part: dict[str, Any] = {"text": piece.text}
        if piece.kind == "thinking":
            part["thought"] = True
        return self._event(self._response(turn, [part], None, sent))

    def stream_tail(self, turn: Turn) -> list[bytes]:
        r = turn.reply
        parts = [self._call(turn)] if r.tool_call else []
        return [self._event(self._response(turn, parts, self._FINISH[r.finish], r.output_tokens))]

    def stream_error(self, message: str | None) -> bytes:
        return self._event(self.error_body(503, message or "The model is overloaded. Please try again later."))

    def garbled_event(self) -> bytes:
        return sse.frame(GARBLED)

    @staticmethod
    def _signature(turn: Turn) -> str:
        return base64.b64encode(f"sim-signature-{turn.id}".encode()).decode()

    def _call(self, turn: Turn) -> dict[str, Any]:
        call = turn.reply.tool_call
        assert call is not None
        return {"functionCall": {"name": call.name, "args": call.input}, "thoughtSignature": self._signature(turn)}

    @staticmethod
    def _tokens_through(r: Reply, piece: Piece) -> int:
        """Output tokens generated up to `piece`, for the usage of its event (a rough count: the
        exact totals come with the last event)."""
        if piece.kind == "arguments":
            return r.thinking_tokens
        pieces = [p.text for p in r.pieces if p.kind == piece.kind]
        before = pieces.index(piece.text) + 1 if piece.text in pieces else 1
        return before + (r.thinking_tokens if piece.kind == "text" else 0)

    @staticmethod
    def _response(turn: Turn, parts: list[dict[str, Any]] | None, finish: str | None,
                  output_tokens: int) -> dict[str, Any]:
        r = turn.reply
        thoughts = min(r.thinking_tokens, output_tokens)
        usage: dict[str, Any] = {
            "promptTokenCount": r.input_tokens,
            "candidatesTokenCount": output_tokens - thoughts,
            "totalTokenCount": r.input_tokens + output_tokens,
        }
        if thoughts:
            usage["thoughtsTokenCount"] = thoughts
        document: dict[str, Any] = {}
        if parts is not None:
            candidate: dict[str, Any] = {"content": {"parts": parts, "role": gemini.MODEL}, "index": 0}
            if finish is not None:
                candidate["finishReason"] = finish
            document["candidates"] = [candidate]
        return {**document, "usageMetadata": usage, "modelVersion": r.model, "responseId": turn.id}

    @staticmethod
    def _event(obj: object) -> bytes:
        return sse.frame(_dumps(obj))


GEMINI = GeminiWire()
