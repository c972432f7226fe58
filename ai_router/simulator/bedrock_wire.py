"""Bedrock's Converse wire as the simulator speaks it (the Wire interface of wire.py), and the
check of each request's signature.

A whole answer is ConverseResponse JSON. A stream is AWS's binary event stream (the frames
encoded by amazon-transcribe's EventStreamMessageSerializer, AWS Labs' own; botocore has only
the decoder): messageStart, contentBlockStart for a tool call, contentBlockDelta per piece,
contentBlockStop, messageStop, metadata with the usage. An error is Bedrock's: its type in
`x-amzn-ErrorType`, `{"message"}` as the body; inside a stream, an exception message.

Every request must be signed (SigV4) with the simulator's credentials, or carry its Bedrock API
key as a bearer token: the signature is recomputed with botocore's own signer from what arrived,
and a wrong one answered as AWS answers it (403 UnrecognizedClientException for an unknown key,
InvalidSignatureException for a signature that does not match).
"""

from __future__ import annotations

import hmac
import json
import time
from typing import Any

from amazon_transcribe.eventstream import HEADERS_SERIALIZATION_DICT, EventStreamMessageSerializer
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from ai_router.wire import bedrock_converse as bedrock

from .bedrock_request import BedrockCall, bedrock_reply
from .reply import Piece, Reply
from .script import Family
from .wire import GARBLED, Turn

ACCESS_KEY_ID = bedrock.SIMULATOR_ACCESS_KEY_ID
SECRET_ACCESS_KEY = bedrock.SIMULATOR_SECRET_ACCESS_KEY
API_KEY = bedrock.SIMULATOR_API_KEY
_NAMESPACE = "http://internal.amazon.com/coral/com.amazon.bedrock/"
_SIGNATURE_PREFIX = "AWS4-HMAC-SHA256 "
_serializer = EventStreamMessageSerializer()


def signature_problem(method: str, target: str, headers: dict[str, str], body: bytes) -> tuple[str, str] | None:
    """(error type, message) when the request's signature is not the simulator's; None if it
    is. `headers` are the request's, their names lowercase; `target` its path and query."""
    authorization = headers.get("authorization", "")
    if authorization.startswith("Bearer "):
        if hmac.compare_digest(authorization.removeprefix("Bearer ").strip(), API_KEY):
            return None
        return "UnrecognizedClientException", "Invalid API Key format: Must start with pre-defined prefix"
    if not authorization.startswith(_SIGNATURE_PREFIX):
        return "MissingAuthenticationTokenException", "Missing Authentication Token"
    fields = dict(part.strip().partition("=")[::2] for part in authorization.removeprefix(_SIGNATURE_PREFIX).split(","))
    access_key, date, region, service, _ = (fields.get("Credential", "").split("/") + [""] * 5)[:5]
    if access_key != ACCESS_KEY_ID:
        return "UnrecognizedClientException", "The security token included in the request is invalid."
    signed_names = fields.get("SignedHeaders", "").split(";")
    if "host" not in signed_names or not headers.get("x-amz-date", "").startswith(date):
        return "IncompleteSignatureException", "The request signature must cover host and x-amz-date."
    rebuilt = AWSRequest(method=method, url=f"http://{headers['host']}{target}", data=body,
                         headers={name: headers.get(name, "") for name in signed_names})
    rebuilt.context["timestamp"] = headers["x-amz-date"]
    signer = SigV4Auth(Credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY), service, region)
    expected = signer.signature(signer.string_to_sign(rebuilt, signer.canonical_request(rebuilt)), rebuilt)
    if service != bedrock.SIGNING_NAME or not hmac.compare_digest(expected, fields.get("Signature", "")):
        return ("InvalidSignatureException", "The request signature we calculated does not match the signature "
                "you provided. Check your AWS Secret Access Key and signing method. Consult the service "
                "documentation for details.")
    return None


def error_headers(kind: str) -> dict[str, str]:
    return {"x-amzn-ErrorType": f"{kind}:{_NAMESPACE}"}


def error_type(status: int) -> str:
    return bedrock.TYPE_OF_STATUS.get(status, "InternalServerException" if status >= 500 else "ValidationException")


def _frame(event: str, payload: object) -> bytes:
    headers: HEADERS_SERIALIZATION_DICT = {
        ":event-type": event, ":content-type": "application/json", ":message-type": "event",
    }  # fmt: skip
    return _serializer.serialize(headers, payload if isinstance(payload, bytes) else json.dumps(payload).encode())


class BedrockWire:
    """One per request: a stream numbers its content blocks as it goes."""

    family: Family = "bedrock"
    request_id_header = bedrock.REQUEST_ID_HEADER
    stream_error_status = 503

    def __init__(self) -> None:
        self._block = -1  # the content block open in the stream, if any
        self._open: str | None = None
        self._paths: list[str] = []  # additionalModelResponseFieldPaths asked for

    def parse(self, call: object) -> Reply:
        reply = bedrock_reply(call)  # validates the paths too
        assert isinstance(call, BedrockCall) and isinstance(call.body, dict)
        self._paths = list(call.body.get("additionalModelResponseFieldPaths") or [])
        return reply

    def new_turn(self, reply: Any, n: int) -> Turn:
        return Turn(reply, f"sim-response-{n}", int(time.time()), f"tooluse_sim_{n}")

    def error_body(self, status: int, message: str, param: str | None = None) -> dict[str, Any]:
        return {"message": message}

    def message(self, turn: Turn) -> dict[str, Any]:
        r = turn.reply
        content: list[dict[str, Any]] = []
        if r.thinking is not None:
            content.append({"reasoningContent": {"reasoningText": {"text": r.thinking_text, "signature": "sim"}}})
        if r.tool_call:
            content.append({"toolUse": {"toolUseId": turn.tool_call_id, "name": r.tool_call.name,
                                        "input": r.tool_call.input}})
        else:
            content.append({"text": r.text})
        return {"output": {"message": {"role": bedrock.ASSISTANT, "content": content}},
                "stopReason": bedrock.STOP_REASON_OF[r.finish], "usage": self._usage(turn),
                "metrics": {"latencyMs": 1}, **self._response_fields(r)}

    def stream_head(self, turn: Turn) -> list[bytes]:
        return [_frame("messageStart", {"role": bedrock.ASSISTANT})]

    def stream_token(self, turn: Turn, piece: Piece) -> bytes:
        frames = b""
        if piece.kind != self._open:
            frames += self._close()
            self._block, self._open = self._block + 1, piece.kind
            call = turn.reply.tool_call
            if piece.kind == "arguments" and call is not None:
                start = {"toolUse": {"toolUseId": turn.tool_call_id, "name": call.name}}
                frames += _frame("contentBlockStart", {"start": start, "contentBlockIndex": self._block})
        delta: dict[str, Any] = (
            {"toolUse": {"input": piece.text}} if piece.kind == "arguments"
            else {"reasoningContent": {"text": piece.text}} if piece.kind == "thinking"
            else {"text": piece.text}
        )
        return frames + _frame("contentBlockDelta", {"delta": delta, "contentBlockIndex": self._block})

    def stream_tail(self, turn: Turn) -> list[bytes]:
        return [self._close(),
                _frame("messageStop", {"stopReason": bedrock.STOP_REASON_OF[turn.reply.finish],
                                       **self._response_fields(turn.reply)}),
                _frame("metadata", {"usage": self._usage(turn), "metrics": {"latencyMs": 1}})]

    def stream_error(self, message: str | None) -> bytes:
        headers: HEADERS_SERIALIZATION_DICT = {
            ":exception-type": "serviceUnavailableException", ":content-type": "application/json",
            ":message-type": "exception",
        }  # fmt: skip
        return _serializer.serialize(headers, json.dumps({"message": message or "Bedrock is unable to process "
                                                          "your request."}).encode())

    def garbled_event(self) -> bytes:
        return _frame("contentBlockDelta", GARBLED)

    def _response_fields(self, r: Reply) -> dict[str, Any]:
        """additionalModelResponseFields, as Claude answers the paths asked for (its stop_sequence)."""
        if bedrock.STOP_SEQUENCE_PATH not in self._paths:
            return {}
        return {"additionalModelResponseFields": {"stop_sequence": r.stop_sequence}}

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        self._open = None
        return _frame("contentBlockStop", {"contentBlockIndex": self._block})

    @staticmethod
    def _usage(turn: Turn) -> dict[str, int]:
        r = turn.reply
        return {"inputTokens": r.input_tokens, "outputTokens": r.output_tokens,
                "totalTokens": r.input_tokens + r.output_tokens}
