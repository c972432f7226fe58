"""Amazon Bedrock's Converse and ConverseStream (wire/bedrock_converse.py), reached with the plain
transport and signed by botocore.

The URL names the model (one pooled upstream per model and method). Each request is signed
anew with botocore's SigV4Auth over exactly the URL, headers and body the transport sends, the
signature going out as that request's own headers; credentials come from botocore's chain (the
AWS_* variables, profiles, web identity, container and instance roles, refreshed by botocore). A
Bedrock API key (AWS_BEARER_TOKEN_BEDROCK) is sent as a bearer token instead. A stream is AWS's
binary event stream, decoded by botocore's EventStreamBuffer; an exception inside it means what
the same error type means as an HTTP answer. What is translated, dropped or refused:
docs/TRANSLATION.md ("Bedrock").
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.eventstream import EventStreamBuffer, EventStreamMessage, ParserError
from botocore.exceptions import BotoCoreError
from botocore.session import Session

from ai_router.call import Endpoint
from ai_router.config import ProviderSettings
from ai_router.errors import (
    InvalidRequest,
    ProviderNotConfigured,
    RouterError,
    UpstreamAuthFailed,
    UpstreamError,
    UpstreamUnavailable,
)
from ai_router.providers import failures
from ai_router.providers.http_provider import HTTPProvider
from ai_router.providers.tool_arguments import arguments_object
from ai_router.providers.transport import Answer, TransportFactory, transport_for
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
from ai_router.wire import bedrock_converse as wire

_SIGNATURE_HEADERS = ("X-Amz-Date", "X-Amz-Security-Token", "Authorization")


class BedrockProvider(HTTPProvider):
    family = wire.FAMILY
    default_base_url = wire.DEFAULT_BASE_URL

    def __init__(self, settings: ProviderSettings, connect: TransportFactory = transport_for) -> None:
        super().__init__(settings, connect)
        self._connect = connect
        self._by_model = UpstreamsOnDemand()  # by (model, stream)
        self._region = settings.region or ""
        self._credentials: Credentials | None = None
        self._no_credentials = ""  # why botocore found none
        if self.api_key is None:  # a bearer token is sent instead of a signature
            try:
                self._credentials = Session(profile=settings.profile).get_credentials()
            except BotoCoreError as exc:  # a profile that does not exist, say
                self._no_credentials = str(exc)

    def _sdk_heads(self) -> dict[Endpoint, tuple[str, dict[str, str]]]:
        return {}  # no fixed endpoint: each model has its URL (`_upstream`)

    def unavailable_reason(self) -> str | None:
        if self.api_key is not None or self._credentials is not None:
            return None
        return self._no_credentials or f"no AWS credentials found: set {wire.MISSING_CREDENTIALS}"

    # ---- the contract -----------------------------------------------------------------------

    def complete(self, request: ChatRequest) -> ChatResponse:
        answer = self._send(request, stream=False)
        try:
            document = orjson.loads(answer.content)
            content = document["output"]["message"]["content"]
            reason = document.get("stopReason")
            self._check_stop(reason)
            input_tokens, output_tokens = wire.usage(document.get("usage"))
            matched = _stop_sequence(reason, document.get("additionalModelResponseFields"))
            return ChatResponse(
                content="".join(block["text"] for block in content if "text" in block),
                finish_reason=wire.finish_reason(reason),
                usage=Usage(input_tokens, output_tokens),
                provider=self.name,
                model=request.model,
                tool_calls=tuple(_tool_call(block["toolUse"]) for block in content if "toolUse" in block),
                reasoning="".join(_reasoning(block) for block in content if "reasoningContent" in block),
                stop_sequence=matched,
            )
        except RouterError:
            raise
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError) as exc:
            raise self.unreadable(exc) from exc

    def stream(self, request: ChatRequest, watch: Watch) -> Iterator[ChatChunk]:
        reason: str | None = None
        matched: str | None = None
        input_tokens = output_tokens = 0
        calls: dict[int, int] = {}  # content block index -> tool call index
        events = self._events(request, watch)
        try:
            for kind, event in events:
                if kind == "contentBlockStart" and "toolUse" in event["start"]:
                    start = event["start"]["toolUse"]
                    calls[event["contentBlockIndex"]] = index = len(calls)
                    yield ChatChunk(tool_call=ToolCallDelta(index, start["toolUseId"], start["name"]))
                elif kind == "contentBlockDelta":
                    delta = event["delta"]
                    if "text" in delta:
                        yield ChatChunk(delta=delta["text"])
                    elif "toolUse" in delta:
                        index = calls[event["contentBlockIndex"]]
                        yield ChatChunk(tool_call=ToolCallDelta(index, arguments=delta["toolUse"]["input"]))
                    elif delta.get("reasoningContent", {}).get("text"):
                        yield ChatChunk(reasoning=delta["reasoningContent"]["text"])
                elif kind == "messageStop":
                    reason = event["stopReason"]
                    matched = _stop_sequence(reason, event.get("additionalModelResponseFields"))
                elif kind == "metadata":
                    input_tokens, output_tokens = wire.usage(event.get("usage"))
        except RouterError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise self.unreadable(exc) from exc
        finally:
            events.close()
        if reason is None:
            raise self.unreadable(ValueError("the stream ended before its messageStop event"))
        self._check_stop(reason)
        yield ChatChunk(
            finish_reason=wire.finish_reason(reason), usage=Usage(input_tokens, output_tokens), stop_sequence=matched
        )

    def check(self, request: ChatRequest) -> None:
        """Refused before any attempt: what Converse has no way to carry, and what the
        request's model has no field for."""
        self._check_model(request)
        tool_blocks = False
        for index, message in enumerate(request.messages):
            tool_blocks = tool_blocks or bool(message.tool_calls) or message.role == "tool"
            for call_index, call in enumerate(message.tool_calls):
                arguments_object(call, f"messages[{index}].tool_calls[{call_index}]", "a Bedrock")
            for part_index, part in enumerate(() if isinstance(message.content, str) else message.content):
                where = f"messages[{index}].content[{part_index}]"
                if isinstance(part, ImagePart) and part.url:
                    raise self._refuse(where, "takes images inline only (Bedrock fetches no web URL); "
                                       "send the image as a data: URL or base64 data")
                if isinstance(part, ImagePart) and part.media_type not in wire.IMAGE_FORMATS:
                    raise self._refuse(where, f"takes images as {', '.join(wire.IMAGE_FORMATS)} only; "
                                       f"got {part.media_type or 'no media type'}")
        if request.tool_choice is not None and request.tool_choice.mode == "none" and tool_blocks:
            raise self._refuse("tool_choice", "cannot forbid tool calls in a conversation that has "
                               "some: Converse has no tool choice 'none', and takes tool calls "
                               "and results only with the tools declared")
        if request.output_format is not None and request.output_format.schema is None:
            raise self._refuse("response_format", "takes structured output with a JSON schema "
                               "only (Converse has no JSON mode without one)")

    def close(self) -> None:
        self._by_model.close()

    def _check_model(self, request: ChatRequest) -> None:
        """What this model has no field for (`check`, for each target with its own model)."""
        vendor = wire.model_vendor(request.model)
        if request.sampling.top_k is not None and vendor not in ("anthropic", "amazon"):
            raise self._refuse("top_k", f"passes top_k to Anthropic and Amazon models only; "
                               f"{request.model!r} has no field for it")
        if vendor == "anthropic" and request.reasoning_effort not in (None, "none"):
            # Claude's thinking sets temperature and top_k itself and takes top_p only from 0.95.
            sampling = request.sampling
            for name, wrong in (("temperature", sampling.temperature not in (None, 1.0)),
                                ("top_k", sampling.top_k is not None),
                                ("top_p", sampling.top_p is not None and sampling.top_p < 0.95)):
                if wrong:
                    raise self._refuse(name, f"cannot send {name} with reasoning_effort to "
                                       f"{request.model!r}: Claude's thinking sets temperature and "
                                       "top_k itself and takes top_p only from 0.95 to 1")
        if _budgeted(request) and (request.max_tokens or 0) <= wire.MIN_THINKING_BUDGET:
            raise self._refuse("max_tokens", f"needs max_tokens above {wire.MIN_THINKING_BUDGET} with "
                               f"reasoning_effort for {request.model!r}: it thinks within a budget of "
                               f"at least {wire.MIN_THINKING_BUDGET} tokens, taken from max_tokens")

    def _refuse(self, param: str, what: str) -> InvalidRequest:
        return InvalidRequest(f"{param}: provider {self.name!r} {what}", param=param)

    def _upstream(self, model: str, stream: bool) -> UpstreamHTTP:
        def make() -> UpstreamHTTP:
            base = self.settings.base_url or self.default_base_url.format(region=self._region)
            # What boto3 sends (no Accept: the operation decides the answer's type).
            headers = {"content-type": "application/json", "user-agent": "ai-router"}
            if self.api_key is not None:
                headers["authorization"] = f"Bearer {self.api_key}"
            url = base.rstrip("/") + wire.path(model, stream)
            return UpstreamHTTP(self.failing, url, headers, self._connect, status_error)

        return self._by_model.get((model, stream), make)

    def _send(self, request: ChatRequest, stream: bool) -> Answer:
        if self.api_key is None and self._credentials is None:
            raise ProviderNotConfigured(self.name, wire.MISSING_CREDENTIALS)
        upstream = self._upstream(request.model, stream)
        body = orjson.dumps(self._body(request))
        return upstream.post(
            body, self.timeout_for(request.timeout), request.request_id, stream, self._sign(upstream, body)
        )

    def _sign(self, upstream: UpstreamHTTP, body: bytes) -> dict[str, str]:
        """SigV4's headers for `body` sent to `upstream`: botocore signs the method, the URL,
        the headers the transport sends (Host as it renders it) and the body."""
        if self._credentials is None:
            return {}  # a bearer token, in the upstream's fixed headers
        headers = {"host": urlsplit(upstream.url).netloc.rpartition("@")[2], **upstream.headers}
        signed = AWSRequest(method="POST", url=upstream.url, data=body, headers=headers)
        frozen = self._credentials.get_frozen_credentials()
        SigV4Auth(frozen, wire.SIGNING_NAME, self._region).add_auth(signed)
        return {name: signed.headers[name] for name in _SIGNATURE_HEADERS if name in signed.headers}

    def _events(self, request: ChatRequest, watch: Watch) -> Generator[tuple[str, Any], None, None]:
        """(event type, payload) of each event of the streamed answer, read under `watch` as
        HTTPProvider's `events` reads it; an exception event raised as the router's error."""
        deadline = time.monotonic() + (request.timeout or self.settings.timeout)
        answer = self._send(request, stream=True)
        read = self._read(
            self._watched(answer.iter_bytes(), answer, watch, deadline - time.monotonic()), watch
        )
        messages = EventStreamBuffer()
        try:
            for data in read:
                messages.add_data(data)
                for message in messages:
                    yield self._event(message)
        except ParserError as exc:
            raise self.unreadable(exc) from exc
        finally:
            read.close()
            answer.close()

    def _event(self, message: EventStreamMessage) -> tuple[str, Any]:
        headers = message.headers
        kind = headers.get(":message-type")
        if kind == "event":
            return str(headers.get(":event-type")), orjson.loads(message.payload)
        if kind == "exception":
            kind = wire.stream_exception_type(str(headers.get(":exception-type")))
            status = wire.ERROR_STATUSES.get(kind, 500)
            raise status_error(self.failing, status, [(wire.ERROR_TYPE_HEADER, kind)], message.payload)
        raise self.failed_mid_stream({"message": f"{headers.get(':error-code')}: {headers.get(':error-message')}"})

    def _check_stop(self, reason: str | None) -> None:
        if reason in wire.FAILED_OUTPUT:
            # The model's own failure, which another attempt may not repeat: retried.
            raise UpstreamUnavailable(f"provider {self.name!r} ended the answer with stopReason {reason}", self.name)

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        sampling = request.sampling
        body: dict[str, Any] = {"messages": _messages(request.messages)}
        if request.system:
            body["system"] = [{"text": request.system}]
        inference: dict[str, Any] = {"maxTokens": request.max_tokens}
        if sampling.temperature is not None:
            # OpenAI's range is 0-2; the models on Bedrock take 0-1 (as Anthropic's provider does).
            inference["temperature"] = min(sampling.temperature, wire.MAX_TEMPERATURE)
        if sampling.top_p is not None:
            inference["topP"] = sampling.top_p
        if sampling.stop:
            inference["stopSequences"] = list(sampling.stop)
            if wire.model_vendor(request.model) == "anthropic":
                body["additionalModelResponseFieldPaths"] = [wire.STOP_SEQUENCE_PATH]
        body["inferenceConfig"] = inference
        choice = request.tool_choice
        if request.tools and not (choice is not None and choice.mode == "none"):
            tools: dict[str, Any] = {"tools": [{"toolSpec": _tool_spec(tool)} for tool in request.tools]}
            if choice is not None and choice.mode != "auto":
                tools["toolChoice"] = {"tool": {"name": choice.name}} if choice.mode == "tool" else {"any": {}}
            elif choice is not None:
                tools["toolChoice"] = {"auto": {}}
            body["toolConfig"] = tools
        additional = _additional_fields(request)
        if additional:
            body["additionalModelRequestFields"] = additional
        output: dict[str, Any] = {}
        if request.output_format is not None and request.output_format.schema is not None:
            schema = {"schema": orjson.dumps(request.output_format.schema).decode(), "name": request.output_format.name}
            output["textFormat"] = {"type": wire.JSON_SCHEMA, "structure": {"jsonSchema": schema}}
        if request.reasoning_effort not in (None, "none") and not _budgeted(request):
            output["effort"] = wire.EFFORTS[request.reasoning_effort]
        if output:
            body["outputConfig"] = output
        return body


def status_error(
    upstream: failures.Upstream, status: int, headers: Iterable[tuple[str, str]], content: bytes
) -> UpstreamError:
    """An AWS error (`x-amzn-ErrorType` and a JSON `{"message"}`) as the router's error: an
    authentication or authorization failure is the operator's, named by its type alone (AWS's
    text may name the account); others by status (failures.py), their message led by the type."""
    headers = list(headers)
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        body = None
    kind = wire.error_type(headers, body if isinstance(body, dict) else None)
    if kind in wire.AUTH_ERRORS or status in (401, 403):
        return UpstreamAuthFailed(
            f"provider {upstream.name!r} refused the router's AWS credentials ({kind or 'HTTP'} "
            f"{status}); the router's operator must fix its credentials or their permissions",
            upstream.name,
            status,
        )
    status = wire.ERROR_STATUSES.get(kind, status)
    found = failures.status_error(upstream, status, headers, content)
    if kind:
        found.message = found.message.replace(": ", f": {kind}: ", 1)
        found.args = (found.message,)
    return found


def _messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Converse turns: tool results are toolResult blocks of a user turn; consecutive turns of
    one role are merged (Converse wants user and assistant to alternate, the results of
    parallel calls in one turn)."""
    turns: list[dict[str, Any]] = []
    for message in messages:
        role = wire.ASSISTANT if message.role == "assistant" else wire.USER
        content = _content(message)
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(content)
        else:
            turns.append({"role": role, "content": content})
    return turns


def _content(message: Message) -> list[dict[str, Any]]:
    if message.role == "tool":
        result: dict[str, Any] = {"toolUseId": wire.tool_use_id(message.tool_call_id), "content": [{"text": message.text}]}
        if message.is_error:
            result["status"] = "error"
        return [{"toolResult": result}]
    parts = (TextPart(message.content),) if isinstance(message.content, str) else message.content
    blocks = [_block(part) for part in parts if not (isinstance(part, TextPart) and not part.text)]
    for call in message.tool_calls:
        use = {"toolUseId": wire.tool_use_id(call.id), "name": call.name, "input": orjson.loads(call.arguments or "{}")}
        blocks.append({"toolUse": use})
    return blocks or [{"text": ""}]


def _block(part: TextPart | ImagePart) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"text": part.text}
    # A blob travels in JSON as base64, as the part already holds it.
    return {"image": {"format": wire.IMAGE_FORMATS[part.media_type], "source": {"bytes": part.data}}}


def _tool_spec(tool: Tool) -> dict[str, Any]:
    schema = dict(tool.parameters) if tool.parameters else {"type": "object", "properties": {}}
    spec: dict[str, Any] = {"name": tool.name, "inputSchema": {"json": schema}}
    if tool.description:
        spec["description"] = tool.description
    if tool.strict:
        spec["strict"] = True
    return spec


def _additional_fields(request: ChatRequest) -> dict[str, Any]:
    """What Converse has no field of its own for, in the model's request: top_k and Claude's
    thinking (adaptive, or within a budget for the Claude models that take only that) for
    Anthropic models, topK in Amazon Nova's inferenceConfig."""
    fields: dict[str, Any] = {}
    vendor = wire.model_vendor(request.model)
    if request.sampling.top_k is not None:
        if vendor == "amazon":
            fields["inferenceConfig"] = {"topK": request.sampling.top_k}
        else:
            fields["top_k"] = request.sampling.top_k
    if _budgeted(request):
        assert request.reasoning_effort is not None
        budget = min(wire.THINKING_BUDGETS[request.reasoning_effort], (request.max_tokens or 0) - 1)
        fields["thinking"] = {"type": "enabled", "budget_tokens": budget}
    elif request.reasoning_effort not in (None, "none") and vendor == "anthropic":
        fields["thinking"] = dict(wire.ADAPTIVE_THINKING)
    return fields


def _budgeted(request: ChatRequest) -> bool:
    """Reasoning asked of a Claude model that thinks only within a budget of tokens."""
    return (
        request.reasoning_effort not in (None, "none")
        and wire.model_vendor(request.model) == "anthropic"
        and wire.thinks_within_a_budget(request.model)
    )


def _stop_sequence(reason: str | None, fields: Any) -> str | None:
    """The stop sequence that ended the text, when the model said which (STOP_SEQUENCE_PATH)."""
    found = fields.get("stop_sequence") if isinstance(fields, dict) and reason == "stop_sequence" else None
    return found if isinstance(found, str) else None


def _tool_call(block: Mapping[str, Any]) -> ToolCall:
    return ToolCall(block["toolUseId"], block["name"], orjson.dumps(block.get("input") or {}).decode())


def _reasoning(block: Mapping[str, Any]) -> str:
    text = (block["reasoningContent"].get("reasoningText") or {}).get("text")
    return text if isinstance(text, str) else ""
