"""One adapter per client family: how to write a Conversation as its request, and how to read
text, tool calls, finish reason, usage and errors from its answer, unary and streamed.

Each adapter drives the real client (the openai SDK, the anthropic SDK, a gRPC stub) against the
real router, and reads the answer into a neutral `Answer` while it arrives.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from types import ModuleType
from typing import Any, ClassVar

import anthropic
import grpc
import httpx2
import openai

from ai_router._generated import ai_router_pb2 as pb
from ai_router._generated import ai_router_pb2_grpc as pb_grpc

from .conversation import Answer, Call, Conversation, Family, Finish, Turn, Upstream, Usage
from .formats import FORMATS

TIMEOUT = 15.0
# What an Anthropic client sends as max_tokens (the API requires one) when a scenario sets none.
ANTHROPIC_CLIENT_MAX_TOKENS = 100

ErrorSeen = tuple[str, int | None]  # a neutral kind, and the HTTP status where there is one
# OpenAI's finish reasons, which the router's gRPC API uses too.
OPENAI_FINISH: dict[Finish, str] = {"stop": "stop", "length": "length", "tool": "tool_calls", "stop_sequence": "stop"}


class Client(ABC):
    name: ClassVar[str]  # the row label in the matrix
    family: ClassVar[Family | None]  # the API family it speaks; None: neither (gRPC)
    finish_reasons: ClassVar[dict[Finish, str]]
    errors: ClassVar[tuple[type[Exception], ...]]  # what the client raises on failure

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

    def expected_finish(self, finish: Finish, upstream: Upstream, stop: str | None) -> tuple[str, str | None]:
        """The finish reason (and the stop sequence, for families that report it) to expect."""
        return self.finish_reasons[finish], None

    def expected_error(self, kind: str, status: int | None) -> ErrorSeen:
        return kind, status

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
        assert self.family is not None
        return FORMATS[self.family].request(conversation, upstream.route, self.limit(conversation))

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


class OpenAIClient(HttpClient):
    name = "openai-sdk"
    family = "openai"
    sdk_module: ClassVar[ModuleType] = openai
    errors = (openai.OpenAIError,)
    finish_reasons = OPENAI_FINISH

    def __init__(self, http_url: str) -> None:
        super().__init__()
        self.sdk = openai.OpenAI(base_url=f"{http_url}/v1", api_key="any", max_retries=0, http_client=self.http)

    def _complete(self, conversation: Conversation, upstream: Upstream, answer: Answer) -> None:
        completion = self.sdk.chat.completions.create(**self.request(conversation, upstream))
        choice = completion.choices[0]
        answer.models.add(completion.model)
        answer.text = choice.message.content or ""
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


class AnthropicClient(HttpClient):
    name = "anthropic-sdk"
    family = "anthropic"
    sdk_module: ClassVar[ModuleType] = anthropic
    errors = (anthropic.AnthropicError,)
    finish_reasons = {"stop": "end_turn", "length": "max_tokens", "tool": "tool_use", "stop_sequence": "end_turn"}

    def __init__(self, http_url: str) -> None:
        super().__init__()
        self.sdk = anthropic.Anthropic(base_url=http_url, api_key="any", max_retries=0, http_client=self.http)

    def limit(self, conversation: Conversation) -> int | None:
        return conversation.max_tokens or ANTHROPIC_CLIENT_MAX_TOKENS

    def expected_finish(self, finish: Finish, upstream: Upstream, stop: str | None) -> tuple[str, str | None]:
        # Only an Anthropic upstream says which stop sequence matched; OpenAI's "stop" does not.
        if finish == "stop_sequence" and upstream.family == "anthropic":
            return "stop_sequence", stop
        return self.finish_reasons[finish], None

    def _complete(self, conversation: Conversation, upstream: Upstream, answer: Answer) -> None:
        message = self.sdk.messages.create(**self.request(conversation, upstream))
        answer.text = "".join(block.text for block in message.content if block.type == "text")
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
