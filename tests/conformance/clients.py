"""One adapter per client family: how to write a Conversation as its request, and how to read
text, tool calls, finish reason, usage and errors from its answer, unary and streamed.

Each adapter drives the real client (the openai SDK, the anthropic SDK, a gRPC stub) against the
real router, and reads the answer into a neutral `Answer` while it arrives.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import replace
from types import ModuleType
from typing import Any, ClassVar

import anthropic
import grpc
import httpx2
import openai

from ai_router._generated import ai_router_pb2 as pb
from ai_router._generated import ai_router_pb2_grpc as pb_grpc

from .conversation import Answer, Call, Conversation, Family, Finish, Turn, Upstream, Usage
from .formats import FORMATS, RESPONSES, WireFormat

TIMEOUT = 15.0
# What an Anthropic client sends as max_tokens (the API requires one) when a scenario sets none.
ANTHROPIC_CLIENT_MAX_TOKENS = 100

ErrorSeen = tuple[str, int | None]  # a neutral kind, and the HTTP status where there is one
# OpenAI's finish reasons, which the router's gRPC API uses too.
OPENAI_FINISH: dict[Finish, str] = {"stop": "stop", "length": "length", "tool": "tool_calls", "stop_sequence": "stop"}


class Client(ABC):
    name: ClassVar[str]  # the row label in the matrix
    family: ClassVar[Family | None]  # the API family it speaks; None: neither (gRPC)
    wire: ClassVar[WireFormat | None] = None  # the format of its requests (HTTP clients)
    finish_reasons: ClassVar[dict[Finish, str]]
    errors: ClassVar[tuple[type[Exception], ...]]  # what the client raises on failure
    # Scenarios the client's API cannot express, and why: their cells are n/a, not run.
    inexpressible: ClassVar[dict[str, str]] = {}

    def send(self, conversation: Conversation, upstream: Upstream, stream: bool) -> Answer:
        answer = Answer()
        try:
            if stream:
                self._stream(conversation, upstream, answer)
            else:
                self._complete(conversation, upstream, answer)
        except self.errors as error:
            answer.error = error
        return answer

    def limit(self, conversation: Conversation) -> int | None:
        """The token limit this client puts in its request for the conversation."""
        return conversation.max_tokens

    def conveyed(self, conversation: Conversation) -> Conversation:
        """The conversation as this client's API can say it: what any upstream can receive."""
        reasoning = conversation.reasoning
        if reasoning and reasoning.budget:
            return replace(conversation, reasoning=replace(reasoning, budget=None))  # no budgets here
        return conversation

    def expected_finish(self, finish: Finish, upstream: Upstream, stop: str | None) -> tuple[str, str | None]:
        """The finish reason (and the stop sequence, for families that report it) to expect."""
        return self.finish_reasons[finish], None

    def expected_error(self, kind: str, status: int | None) -> ErrorSeen:
        return kind, status

    def upstream_wire(self, upstream: Upstream) -> WireFormat:
        """The format the upstream receives: the client's own, relayed, where they are of one
        family; else the upstream family's, translated."""
        if self.family == upstream.family and self.wire is not None:
            return self.wire
        return FORMATS[upstream.family]

    def expected_reasoning(self, thinking: str, upstream: Upstream) -> str:
        """The reasoning this client gets, given the simulator's thinking for the request:
        Anthropic's thinking (on Bedrock too) and Gemini's thoughts are shown; OpenAI's chat
        completions send none."""
        return thinking if upstream.family in ("anthropic", "gemini", "bedrock") else ""

    @abstractmethod
    def classify(self, error: Exception) -> ErrorSeen: ...

    @abstractmethod
    def _complete(self, conversation: Conversation, upstream: Upstream, answer: Answer) -> None: ...

    @abstractmethod
    def _stream(self, conversation: Conversation, upstream: Upstream, answer: Answer) -> None: ...


class HttpClient(Client):
    """An official SDK on the router's /v1 endpoints. It keeps the bodies it sends, so that a
    same-family relay can be compared byte for byte with what reached the upstream."""

    sdk_module: ClassVar[ModuleType]

    def __init__(self) -> None:
        self._sent: list[bytes] = []
        self.http = httpx2.Client(timeout=TIMEOUT, event_hooks={"request": [self._keep_body]})

    def _keep_body(self, request: httpx2.Request) -> None:
        self._sent.append(request.read())

    def send(self, conversation: Conversation, upstream: Upstream, stream: bool) -> Answer:
        self._sent.clear()
        answer = super().send(conversation, upstream, stream)
        answer.sent = json.loads(self._sent[-1]) if self._sent else None
        return answer

    def request(self, conversation: Conversation, upstream: Upstream) -> dict[str, Any]:
        assert self.wire is not None
        return self.wire.request(self.conveyed(conversation), upstream.route, self.limit(conversation))

    def classify(self, error: Exception) -> ErrorSeen:
        sdk = self.sdk_module
        status = getattr(error, "status_code", None)
        if isinstance(error, sdk.RateLimitError):
            return "rate_limited", status
        if isinstance(error, sdk.InternalServerError):
            return "unavailable", status
        if isinstance(error, sdk.APIConnectionError):
            return "connection_lost", None
        if type(error) is sdk.APIError or (isinstance(error, sdk.APIStatusError) and status == 200):
            return "error_event", None  # raised by an error event inside a 200 stream
        return type(error).__name__, status


class OpenAIChatClient(HttpClient):
    name = "openai-chat"
    family = "openai"
    sdk_module: ClassVar[ModuleType] = openai
    errors = (openai.OpenAIError,)
    finish_reasons = OPENAI_FINISH
    wire = FORMATS["openai"]
    inexpressible = {"previous-response": "Chat Completions keeps no responses to continue"}

    def __init__(self, http_url: str) -> None:
        super().__init__()
        self.sdk = openai.OpenAI(base_url=f"{http_url}/v1", api_key="any", max_retries=0, http_client=self.http)

    def _complete(self, conversation: Conversation, upstream: Upstream, answer: Answer) -> None:
        completion = self.sdk.chat.completions.create(**self.request(conversation, upstream))
        choice = completion.choices[0]
        answer.models.add(completion.model)
        answer.text = choice.message.content or ""
        answer.reasoning = self._reasoning(choice.message)
        answer.calls = [Call(c.id, c.function.name, c.function.arguments) for c in choice.message.tool_calls or ()]
        answer.end(choice.finish_reason)
        answer.usage = self._usage(completion.usage)

    def _stream(self, conversation: Conversation, upstream: Upstream, answer: Answer) -> None:
        request = {**self.request(conversation, upstream), **FORMATS["openai"].stream_fields()}
        for chunk in self.sdk.chat.completions.create(**request):
            answer.models.add(chunk.model)
            if chunk.usage is not None:
                answer.usage = self._usage(chunk.usage)
            for choice in chunk.choices:
                answer.add_reasoning(self._reasoning(choice.delta))
                answer.add_text(choice.delta.content)
                for piece in choice.delta.tool_calls or ():
                    function = piece.function
                    answer.add_call_piece(piece.index, piece.id, function and function.name,
                                          function and function.arguments)
                if choice.finish_reason:
                    answer.end(choice.finish_reason)

    @staticmethod
    def _usage(usage: Any) -> Usage | None:
        return usage and Usage(usage.prompt_tokens, usage.completion_tokens, usage.total_tokens)

    @staticmethod
    def _reasoning(message: Any) -> str:
        """`reasoning_content`, where OpenAI-compatible servers put reasoning (not in the SDK's types)."""
        return str((message.model_extra or {}).get("reasoning_content") or "")


class StreamFailed(Exception):
    """A Responses stream said it failed (an `error` or `response.failed` event): the SDK hands
    such events over like any other, where it raises for a Chat Completions error chunk."""


class OpenAIResponsesClient(HttpClient):
    name = "openai-responses"
    family = "openai"
    wire = RESPONSES
    sdk_module: ClassVar[ModuleType] = openai
    errors = (openai.OpenAIError, StreamFailed)
    # The Responses API has no finish reason: a status, and why an incomplete one stopped.
    finish_reasons = {"stop": "completed", "length": "max_output_tokens", "tool": "completed"}
    inexpressible = {"stop": "the Responses API has no stop sequences"}

    def __init__(self, http_url: str) -> None:
        super().__init__()
        self.sdk = openai.OpenAI(base_url=f"{http_url}/v1", api_key="any", max_retries=0, http_client=self.http)

    def expected_reasoning(self, thinking: str, upstream: Upstream) -> str:
        # Both upstreams show it here: OpenAI's Responses API as a reasoning summary, when one is
        # asked for (as this client does), and Anthropic's thinking, translated to one.
        return thinking

    def classify(self, error: Exception) -> ErrorSeen:
        if isinstance(error, StreamFailed):
            return "error_event", None
        return super().classify(error)

    def _complete(self, conversation: Conversation, upstream: Upstream, answer: Answer) -> None:
        response = self.sdk.responses.create(**self.request(conversation, upstream))
        self._read_response(response, answer)
        for item in response.output:
            if item.type == "message":
                answer.text += "".join(part.text for part in item.content if part.type == "output_text")
            elif item.type == "function_call":
                answer.calls.append(Call(item.call_id, item.name, item.arguments))
            elif item.type == "reasoning":
                answer.reasoning += "".join(part.text for part in item.summary)

    def _stream(self, conversation: Conversation, upstream: Upstream, answer: Answer) -> None:
        calls: dict[int, int] = {}  # output index -> tool call index
        with self.sdk.responses.stream(**self.request(conversation, upstream)) as events:
            for event in events:
                if event.type == "response.created":
                    answer.models.add(event.response.model)
                    answer.response_id = event.response.id
                elif event.type == "response.output_text.delta":
                    answer.add_text(event.delta)
                elif event.type == "response.reasoning_summary_text.delta":
                    answer.add_reasoning(event.delta)
                elif event.type == "response.output_item.added" and event.item.type == "function_call":
                    calls[event.output_index] = len(calls)
                    answer.add_call_piece(calls[event.output_index], event.item.call_id, event.item.name, None)
                elif event.type == "response.function_call_arguments.delta":
                    answer.add_call_piece(calls[event.output_index], None, None, event.delta)
                elif event.type in ("response.completed", "response.incomplete"):
                    self._read_response(event.response, answer)
                elif event.type in ("error", "response.failed"):
                    raise StreamFailed(event.to_json())

    @staticmethod
    def _read_response(response: Any, answer: Answer) -> None:
        """What a whole response says besides its output: model, id, why it ended, usage."""
        answer.models.add(response.model)
        answer.response_id = response.id
        details = response.incomplete_details
        answer.end(details.reason if response.status == "incomplete" and details else response.status)
        usage = response.usage
        answer.usage = usage and Usage(usage.input_tokens, usage.output_tokens, usage.total_tokens)


class AnthropicClient(HttpClient):
    name = "anthropic-messages"
    family = "anthropic"
    sdk_module: ClassVar[ModuleType] = anthropic
    errors = (anthropic.AnthropicError,)
    wire = FORMATS["anthropic"]
    inexpressible = {"previous-response": "the Messages API keeps no responses to continue"}
    finish_reasons = {"stop": "end_turn", "length": "max_tokens", "tool": "tool_use", "stop_sequence": "end_turn"}

    def __init__(self, http_url: str) -> None:
        super().__init__()
        self.sdk = anthropic.Anthropic(base_url=http_url, api_key="any", max_retries=0, http_client=self.http)

    def limit(self, conversation: Conversation) -> int | None:
        return conversation.max_tokens or ANTHROPIC_CLIENT_MAX_TOKENS

    def conveyed(self, conversation: Conversation) -> Conversation:
        # Anthropic's output format has no name; a thinking budget it can say.
        output = conversation.output
        return replace(conversation, output=output and replace(output, name=None))

    def expected_finish(self, finish: Finish, upstream: Upstream, stop: str | None) -> tuple[str, str | None]:
        # Only Anthropic's Claude says which stop sequence matched (on Bedrock too, asked for it);
        # OpenAI's "stop" does not, nor Gemini's.
        if finish == "stop_sequence" and upstream.family in ("anthropic", "bedrock"):
            return "stop_sequence", stop
        return self.finish_reasons[finish], None

    def _complete(self, conversation: Conversation, upstream: Upstream, answer: Answer) -> None:
        message = self.sdk.messages.create(**self.request(conversation, upstream))
        answer.text = "".join(block.text for block in message.content if block.type == "text")
        answer.reasoning = "".join(block.thinking for block in message.content if block.type == "thinking")
        answer.calls = [Call(b.id, b.name, json.dumps(b.input)) for b in message.content if b.type == "tool_use"]
        answer.end(message.stop_reason or "")
        self._read_summary(message, answer)

    def _stream(self, conversation: Conversation, upstream: Upstream, answer: Answer) -> None:
        tool_blocks: dict[int, int] = {}  # content-block index -> tool call index
        with self.sdk.messages.stream(**self.request(conversation, upstream)) as events:
            for event in events:
                if event.type == "content_block_start" and event.content_block.type == "tool_use":
                    tool_blocks[event.index] = len(tool_blocks)
                    block = event.content_block
                    answer.add_call_piece(tool_blocks[event.index], block.id, block.name, None)
                elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                    answer.add_text(event.delta.text)
                elif event.type == "content_block_delta" and event.delta.type == "thinking_delta":
                    answer.add_reasoning(event.delta.thinking)
                elif event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                    answer.add_call_piece(tool_blocks[event.index], None, None, event.delta.partial_json)
                elif event.type == "message_delta":
                    answer.end(event.delta.stop_reason or "")
            self._read_summary(events.get_final_message(), answer)

    @staticmethod
    def _read_summary(message: Any, answer: Answer) -> None:
        answer.models.add(message.model)
        answer.stop_sequence = message.stop_sequence
        answer.usage = Usage(message.usage.input_tokens, message.usage.output_tokens)


class GrpcClient(Client):
    name = "grpc"
    family = None
    errors = (grpc.RpcError,)
    inexpressible = {
        "structured": "protos/ai_router.proto has no response format",
        "strict-tools": "protos/ai_router.proto has no tool strictness",
        "reasoning": "protos/ai_router.proto has no reasoning effort, and no reasoning in answers",
        "previous-response": "protos/ai_router.proto has no stored responses",
    }
    finish_reasons = OPENAI_FINISH
    _codes = {grpc.StatusCode.UNAVAILABLE: "unavailable", grpc.StatusCode.RESOURCE_EXHAUSTED: "rate_limited"}

    def __init__(self, channel: grpc.Channel) -> None:
        self.stub = pb_grpc.AIRouterStub(channel)

    def classify(self, error: Exception) -> ErrorSeen:
        code = error.code() if isinstance(error, grpc.Call) else None
        return self._codes.get(code, str(code)), None

    def expected_error(self, kind: str, status: int | None) -> ErrorSeen:
        # gRPC has no HTTP status, and a stream broken midway ends UNAVAILABLE like any outage.
        return "unavailable" if kind == "error_event" else kind, None

    @staticmethod
    def request(conversation: Conversation, upstream: Upstream) -> pb.AIRequest:
        return pb.AIRequest(
            model=upstream.route,
            system="".join(conversation.instructions[:1]),
            messages=[pb.Message(role="developer", content=text) for text in conversation.instructions[1:]]
            + [GrpcClient._message(turn) for turn in conversation.turns],
            stop=conversation.stop,
            max_tokens=conversation.max_tokens or 0,
            tools=[pb.Tool(name=t.name, description=t.description, parameters=json.dumps(t.parameters))
                   for t in conversation.tools],
            tool_choice=conversation.tool_choice,
        )

    @staticmethod
    def _message(turn: Turn) -> pb.Message:
        message = pb.Message(
            role=turn.role,
            tool_calls=[pb.ToolCall(id=c.id, name=c.name, arguments=c.arguments) for c in turn.calls],
            tool_call_id=turn.call_id,
        )
        if turn.images:
            message.parts.append(pb.ContentPart(text=turn.text))
            message.parts.extend(
                pb.ContentPart(image=pb.Image(url=i.url, media_type=i.media_type, data=i.data)) for i in turn.images
            )
        else:
            message.content = turn.text
        return message

    def _complete(self, conversation: Conversation, upstream: Upstream, answer: Answer) -> None:
        response = self.stub.RouteRequest(self.request(conversation, upstream), timeout=TIMEOUT)
        answer.models.add(f"{response.provider}/{response.model}")
        answer.text = response.content
        answer.calls = [Call(c.id, c.name, c.arguments) for c in response.tool_calls]
        self._read_end(response, answer)

    def _stream(self, conversation: Conversation, upstream: Upstream, answer: Answer) -> None:
        for response in self.stub.StreamingRouteRequest(self.request(conversation, upstream), timeout=TIMEOUT):
            answer.models.add(f"{response.provider}/{response.model}")
            answer.add_text(response.content)
            for piece in response.tool_calls:
                answer.add_call_piece(piece.index, piece.id, piece.name, piece.arguments)
            if response.finish_reason:  # the closing message
                self._read_end(response, answer)

    @staticmethod
    def _read_end(response: pb.AIResponse, answer: Answer) -> None:
        answer.end(response.finish_reason)
        usage = response.usage
        answer.usage = Usage(usage.input_tokens, usage.output_tokens, usage.total_tokens)


# The matrix's rows, in order.
CLIENT_TYPES: tuple[type[Client], ...] = (OpenAIChatClient, OpenAIResponsesClient, AnthropicClient, GrpcClient)
