"""Google Gemini's generateContent API (wire/gemini_generate.py), reached with the plain transport.

No SDK shapes the request: the URL names the model (one pooled upstream per model and method,
made on first use), the key goes in `x-goog-api-key`, and Google's errors are read here
(`status_error`): a bad key is a 400 with reason API_KEY_INVALID, a rate limit says how long to
wait in RetryInfo, an invalid argument names its fields in BadRequest.fieldViolations.
What is translated, dropped or refused: docs/TRANSLATION.md ("Gemini").
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Generator, Iterable, Iterator, Sequence
from typing import Any

import orjson

from ai_router.call import Endpoint
from ai_router.config import ProviderSettings
from ai_router.errors import (
    InvalidRequest,
    RouterError,
    UpstreamAuthFailed,
    UpstreamError,
    UpstreamRejected,
    UpstreamUnavailable,
)
from ai_router.providers import failures
from ai_router.providers.http_provider import HTTPProvider
from ai_router.providers.tool_arguments import arguments_object
from ai_router.providers.transport import TransportFactory, transport_for
from ai_router.providers.upstream import UpstreamHTTP, UpstreamsOnDemand
from ai_router.types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    ImagePart,
    Message,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from ai_router.upstream_watch import Watch
from ai_router.wire import gemini_generate as wire
from ai_router.wire import sse

_CALLING_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY", "tool": "ANY"}
# Upstreams kept, one per (model, method): beyond this the oldest is closed, so that clients
# naming ever new models cannot grow the pools without bound.
class GeminiProvider(HTTPProvider):
    family = wire.FAMILY
    default_base_url = wire.DEFAULT_BASE_URL

    def __init__(self, settings: ProviderSettings, connect: TransportFactory = transport_for) -> None:
        super().__init__(settings, connect)
        self._connect = connect
        self._by_model = UpstreamsOnDemand()  # by (model, stream)

    def _sdk_heads(self) -> dict[Endpoint, tuple[str, dict[str, str]]]:
        return {}  # no fixed endpoint: each model has its URL (`_upstream`)

    # ---- the contract -----------------------------------------------------------------------

    def complete(self, request: ChatRequest) -> ChatResponse:
        answer = self._upstream(request.model, stream=False).post(
            orjson.dumps(self._body(request)),
            self.timeout_for(request.timeout),
            request.request_id,
        )
        try:
            document = orjson.loads(answer.content)
        except orjson.JSONDecodeError as exc:
            raise self.unreadable(exc) from exc
        try:
            candidate = self._candidate(document)
            parts = (candidate.get("content") or {}).get("parts") or []
            calls = [part for part in parts if "functionCall" in part]
            reason = candidate.get("finishReason")
            self._check_finish(reason)
            input_tokens, output_tokens = wire.usage(document.get("usageMetadata"))
            return ChatResponse(
                content="".join(_texts(parts, thought=False)),
                finish_reason=wire.finish_reason(reason, bool(calls)),
                usage=Usage(input_tokens, output_tokens),
                provider=self.name,
                model=request.model,
                tool_calls=tuple(_tool_call(part) for part in calls),
                reasoning="".join(_texts(parts, thought=True)),
            )
        except RouterError:
            raise
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise self.unreadable(exc) from exc

    def stream(self, request: ChatRequest, watch: Watch) -> Iterator[ChatChunk]:
        reason: str | None = None
        input_tokens = output_tokens = 0
        calls = 0
        events = self._events(request, watch)
        try:
            for data in events:
                chunk = orjson.loads(data)
                if "error" in chunk:
                    raise self.failed_mid_stream(chunk["error"])
                if chunk.get("usageMetadata"):
                    # Each chunk's counts are the totals so far: the last ones are the answer's.
                    input_tokens, output_tokens = wire.usage(chunk["usageMetadata"])
                candidates = chunk.get("candidates")
                if not candidates:
                    self._check_prompt(chunk)
                    continue
                candidate = candidates[0]
                for part in (candidate.get("content") or {}).get("parts") or []:
                    if "functionCall" in part:
                        call = _tool_call(part)
                        # A function call comes whole: its id, name and arguments in one piece.
                        yield ChatChunk(
                            tool_call=ToolCallDelta(calls, call.id, call.name, call.arguments)
                        )
                        calls += 1
                    elif part.get("text"):
                        if part.get("thought"):
                            yield ChatChunk(reasoning=part["text"])
                        else:
                            yield ChatChunk(delta=part["text"])
                reason = candidate.get("finishReason") or reason
        except RouterError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            raise self.unreadable(exc) from exc
        finally:
            events.close()
        self._check_finish(reason)
        yield ChatChunk(
            finish_reason=wire.finish_reason(reason, calls > 0),
            usage=Usage(input_tokens, output_tokens),
        )

    def check(self, request: ChatRequest) -> None:
        """Refused before any attempt: what Gemini has no way to carry."""
        names: dict[str, str] = {}
        for index, message in enumerate(request.messages):
            for call_index, call in enumerate(message.tool_calls):
                _arguments_object(call, f"messages[{index}].tool_calls[{call_index}]")
                names[call.id] = call.name
            if message.role == "tool" and message.tool_call_id not in names:
                raise InvalidRequest(
                    f"messages[{index}].tool_call_id {message.tool_call_id!r} names no tool call of "
                    "an earlier assistant message: Gemini matches a function's result to its call "
                    "by the function's name, which the router reads off that call",
                    param=f"messages[{index}].tool_call_id",
                )
            if not isinstance(message.content, str):
                for part_index, part in enumerate(message.content):
                    if isinstance(part, ImagePart) and part.url:
                        raise InvalidRequest(
                            f"messages[{index}].content[{part_index}]: provider {self.name!r} "
                            "takes images inline only (Gemini fetches no web URL); send the image "
                            "as a data: URL or base64 data",
                            param=f"messages[{index}].content[{part_index}]",
                        )
        if len(request.sampling.stop) > wire.MAX_STOP_SEQUENCES:
            raise InvalidRequest(
                f"stop: provider {self.name!r} takes at most {wire.MAX_STOP_SEQUENCES} stop "
                f"sequences; got {len(request.sampling.stop)}",
                param="stop",
            )

    def close(self) -> None:
        self._by_model.close()

    # ---- the wire ---------------------------------------------------------------------------

    def _upstream(self, model: str, stream: bool) -> UpstreamHTTP:
        key = self.require_key()

        def make() -> UpstreamHTTP:
            base = (self.settings.base_url or self.default_base_url).rstrip("/")
            headers = {
                wire.API_KEY_HEADER: key,
                "content-type": "application/json",
                "accept": "text/event-stream" if stream else "application/json",
                "user-agent": "ai-router",
            }
            return UpstreamHTTP(
                self.failing, base + wire.path(model, stream), headers, self._connect, status_error
            )

        return self._by_model.get((model, stream), make)

    def _events(self, request: ChatRequest, watch: Watch) -> Generator[bytes, None, None]:
        """The data of each event of the streamed answer, read under `watch` as HTTPProvider's
        `events` reads it (the first within the call's timeout, then none more than
        `stream_idle_timeout` apart)."""
        deadline = time.monotonic() + (request.timeout or self.settings.timeout)
        answer = self._upstream(request.model, stream=True).post(
            orjson.dumps(self._body(request)),
            self.timeout_for(request.timeout),
            request.request_id,
            stream=True,
        )
        read = self._read(
            self._watched(answer.iter_bytes(), answer, watch, deadline - time.monotonic()), watch
        )
        try:
            yield from sse.event_data(read)
        finally:
            read.close()
            answer.close()

    def _candidate(self, document: dict[str, Any]) -> dict[str, Any]:
        candidates = document.get("candidates")
        if not candidates:
            self._check_prompt(document)
            raise ValueError("an answer without candidates")
        candidate: dict[str, Any] = candidates[0]
        return candidate

    def _check_prompt(self, document: dict[str, Any]) -> None:
        """A prompt Gemini refused to answer: its `promptFeedback.blockReason`, as a rejection
        of the request (another provider would not be asked: the request is the client's)."""
        feedback = document.get("promptFeedback") or {}
        if feedback.get("blockReason"):
            raise UpstreamRejected(
                f"provider {self.name!r} blocked the prompt (promptFeedback.blockReason: "
                f"{feedback['blockReason']}); nothing was generated",
                self.name,
                400,
            )

    def _check_finish(self, reason: str | None) -> None:
        if reason in wire.FAILED_CALLS:
            # The model's own failure, which another attempt may not repeat: retried.
            raise UpstreamUnavailable(
                f"provider {self.name!r} ended the answer with finishReason {reason}", self.name
            )

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        sampling = request.sampling
        body: dict[str, Any] = {"contents": _contents(request.messages)}
        if request.system:
            body["systemInstruction"] = {"parts": [{"text": request.system}]}
        if request.tools:
            body["tools"] = [{"functionDeclarations": [_declaration(tool) for tool in request.tools]}]
        if request.tool_choice is not None:
            calling: dict[str, Any] = {"mode": _CALLING_MODES[request.tool_choice.mode]}
            if request.tool_choice.mode == "tool":
                calling["allowedFunctionNames"] = [request.tool_choice.name]
            body["toolConfig"] = {"functionCallingConfig": calling}
        config: dict[str, Any] = {"maxOutputTokens": request.max_tokens}
        if sampling.temperature is not None:
            config["temperature"] = sampling.temperature
        if sampling.top_p is not None:
            config["topP"] = sampling.top_p
        if sampling.top_k is not None:
            config["topK"] = sampling.top_k
        if sampling.stop:
            config["stopSequences"] = list(sampling.stop)
        if request.output_format is not None:
            config["responseMimeType"] = wire.JSON_MIME_TYPE
            if request.output_format.schema is not None:
                # responseJsonSchema takes JSON Schema as clients write it; responseSchema only
                # an OpenAPI subset of it.
                config["responseJsonSchema"] = dict(request.output_format.schema)
        if request.reasoning_effort is not None:
            config["thinkingConfig"] = _thinking(request.model, request.reasoning_effort)
        body["generationConfig"] = config
        return body


def status_error(
    upstream: failures.Upstream, status: int, headers: Iterable[tuple[str, str]], content: bytes
) -> UpstreamError:
    """Google's `{"error": {"code", "message", "status", "details"}}` as the router's error."""
    error = _error_object(content)
    details = [d for d in error.get("details") or [] if isinstance(d, dict)]
    reasons = {d.get("reason") for d in details if d.get("@type") == wire.ERROR_INFO}
    if wire.API_KEY_INVALID in reasons:
        return UpstreamAuthFailed(
            f"provider {upstream.name!r} rejected the router's API key (HTTP {status}, "
            f"{wire.API_KEY_INVALID}); the router's operator must fix the provider key",
            upstream.name,
            status,
        )
    found = failures.status_error(upstream, status, headers, content)
    fields = [
        f"{violation.get('field')}: {violation.get('description')}"
        for detail in details
        if detail.get("@type") == wire.BAD_REQUEST
        for violation in detail.get("fieldViolations") or []
        if isinstance(violation, dict) and violation.get("field")
    ]
    if fields and isinstance(found, UpstreamRejected):
        found.message = f"{found.message} ({upstream.redact('; '.join(fields))})"
        found.args = (found.message,)
    if found.retry_after is None:
        found.retry_after = _retry_delay(details)
    return found


def _error_object(content: bytes) -> dict[str, Any]:
    try:
        document = orjson.loads(content)
    except orjson.JSONDecodeError:
        return {}
    error = document.get("error") if isinstance(document, dict) else None
    return error if isinstance(error, dict) else {}


def _retry_delay(details: list[dict[str, Any]]) -> float | None:
    """RetryInfo.retryDelay ("37s", a protobuf Duration in JSON), in seconds."""
    for detail in details:
        delay = detail.get("retryDelay") if detail.get("@type") == wire.RETRY_INFO else None
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return float(delay[:-1])
            except ValueError:
                return None
    return None


def _thinking(model: str, effort: str) -> dict[str, Any]:
    """Gemini 2.x takes a thinking budget in tokens, later models a level; thoughts are asked
    for, so that their summary comes back as the answer's reasoning."""
    if model.removeprefix("models/").startswith(("gemini-2.", "gemini-1.")):
        budget = wire.THINKING_BUDGETS[effort]
        return {"thinkingBudget": budget, "includeThoughts": budget != 0}
    return {"thinkingLevel": wire.THINKING_LEVELS[effort], "includeThoughts": True}


def _texts(parts: Sequence[dict[str, Any]], *, thought: bool) -> Iterator[str]:
    for part in parts:
        if isinstance(part.get("text"), str) and bool(part.get("thought")) == thought:
            yield part["text"]


def _tool_call(part: dict[str, Any]) -> ToolCall:
    call = part["functionCall"]
    signature = part.get("thoughtSignature")
    return ToolCall(
        wire.call_id(uuid.uuid4().hex[:16], signature if isinstance(signature, str) else None),
        call["name"],
        orjson.dumps(call.get("args") or {}).decode(),
    )


def _contents(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Gemini turns: the assistant's are the model's, tool results are functionResponse parts of
    a user turn, named after the call they answer; consecutive turns of one role are merged (the
    results of parallel calls go back in one turn, as Gemini wants them)."""
    names: dict[str, str] = {}
    contents: list[dict[str, Any]] = []
    for message in messages:
        role = wire.MODEL if message.role == "assistant" else wire.USER
        parts = _parts(message, names)
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    return contents


def _parts(message: Message, names: dict[str, str]) -> list[dict[str, Any]]:
    if message.role == "tool":
        key = "error" if message.is_error else "output"
        response = {
            "name": names[message.tool_call_id],
            "response": {key: message.text},
        }
        return [{"functionResponse": response}]
    content = (TextPart(message.content),) if isinstance(message.content, str) else message.content
    parts: list[dict[str, Any]] = [
        _part(part) for part in content if not (isinstance(part, TextPart) and not part.text)
    ]
    for call in message.tool_calls:
        names[call.id] = call.name
        part: dict[str, Any] = {"functionCall": {"name": call.name, "args": orjson.loads(call.arguments or "{}")}}
        signature = wire.signature_of(call.id)
        if signature is not None:
            part["thoughtSignature"] = signature
        parts.append(part)
    return parts or [{"text": ""}]


def _part(part: TextPart | ImagePart) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"text": part.text}
    return {"inlineData": {"mimeType": part.media_type, "data": part.data}}


def _declaration(tool: Tool) -> dict[str, Any]:
    declaration: dict[str, Any] = {"name": tool.name, "description": tool.description}
    if tool.parameters:
        # JSON Schema as the client wrote it (`parameters` takes only an OpenAPI subset).
        declaration["parametersJsonSchema"] = dict(tool.parameters)
    return declaration


def _arguments_object(call: ToolCall, where: str) -> None:
    arguments_object(call, where, "a Gemini")
