"""What a Responses client reads from the router: the Response object (the answer of
POST /v1/responses, and what its stream's lifecycle events carry) and the events of the stream,
as `ResponseModel`s. openai_responses.py builds them from the router's types; the OpenAPI
document is generated from them. They are what OpenAI sends: every object the SDK requires is
there, and each event carries its `type` and its `sequence_number` in the stream.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, RootModel

from ai_router.http_api.response_model import ResponseModel, omitted
from ai_router.http_api.v1.openai_chat import OpenAIErrorDetail

# --- the Response object -----------------------------------------------------------------------


class OutputTextContent(ResponseModel):
    type: Literal["output_text"] = "output_text"
    text: str
    annotations: list[Any] = []
    logprobs: list[Any] = []


class OutputMessage(ResponseModel):
    id: str
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    status: str
    content: list[OutputTextContent]


class FunctionCallOutput(ResponseModel):
    """A function call the model made (`call_id` is the call's id, for its output)."""

    id: str
    type: Literal["function_call"] = "function_call"
    call_id: str
    name: str
    arguments: str
    status: str


class SummaryPart(ResponseModel):
    type: Literal["summary_text"] = "summary_text"
    text: str


class ReasoningOutput(ResponseModel):
    """The model's visible reasoning (Anthropic's thinking), as a reasoning summary. The router
    always gives its status; OpenAI may leave it out, and adds the encrypted reasoning when the
    request's `include` asks for it (a relayed answer carries both as they came)."""

    id: str
    type: Literal["reasoning"] = "reasoning"
    summary: list[SummaryPart]
    status: str | None = omitted()
    encrypted_content: str | None = omitted()


OutputItem = OutputMessage | FunctionCallOutput | ReasoningOutput


class InputTokensDetails(ResponseModel):
    cached_tokens: int = 0
    cache_write_tokens: int = 0


class OutputTokensDetails(ResponseModel):
    reasoning_tokens: int = 0


class ResponseUsage(ResponseModel):
    input_tokens: int
    input_tokens_details: InputTokensDetails = InputTokensDetails()
    output_tokens: int
    output_tokens_details: OutputTokensDetails = OutputTokensDetails()
    total_tokens: int


class IncompleteDetails(ResponseModel):
    reason: Literal["max_output_tokens", "content_filter"]


class ResponseObject(ResponseModel):
    """A Response: the answer of POST /v1/responses, and the `response` of its stream's
    lifecycle events. The request's settings are echoed as OpenAI echoes them."""

    id: str
    object: Literal["response"] = "response"
    created_at: int
    completed_at: int | None = None
    status: str
    error: dict[str, Any] | None = None
    incomplete_details: IncompleteDetails | None = None
    model: str
    output: list[OutputItem]
    usage: ResponseUsage | None = None
    instructions: str | None = None
    max_output_tokens: int | None = None
    max_tool_calls: int | None = None
    previous_response_id: str | None = None
    reasoning: dict[str, Any]
    store: bool
    background: bool = False
    temperature: float | None = None
    top_p: float | None = None
    text: dict[str, Any]
    tool_choice: str | dict[str, Any]
    tools: list[dict[str, Any]]
    parallel_tool_calls: bool
    truncation: str
    metadata: dict[str, str]
    service_tier: str = "default"
    user: str | None = omitted()
    safety_identifier: str | None = omitted()
    prompt_cache_key: str | None = omitted()

# --- the stream's events -------------------------------------------------------------------------
# Each event's `type` is a literal of its own class; the base declares it first so that every
# event's JSON starts with its type and sequence number, as OpenAI's do.


class _Event(ResponseModel):
    type: str
    sequence_number: int


class _ItemEvent(_Event):
    """An event about one output item, by its id and its place in `output`."""

    item_id: str
    output_index: int


class _ContentEvent(_ItemEvent):
    content_index: int


class _SummaryEvent(_ItemEvent):
    summary_index: int


class ResponseCreatedEvent(_Event):
    type: Literal["response.created"] = "response.created"
    response: ResponseObject


class ResponseInProgressEvent(_Event):
    type: Literal["response.in_progress"] = "response.in_progress"
    response: ResponseObject


class ResponseCompletedEvent(_Event):
    type: Literal["response.completed"] = "response.completed"
    response: ResponseObject


class ResponseIncompleteEvent(_Event):
    type: Literal["response.incomplete"] = "response.incomplete"
    response: ResponseObject


class ResponseOutputItemAddedEvent(_Event):
    type: Literal["response.output_item.added"] = "response.output_item.added"
    output_index: int
    item: OutputItem


class ResponseOutputItemDoneEvent(_Event):
    type: Literal["response.output_item.done"] = "response.output_item.done"
    output_index: int
    item: OutputItem


class ResponseContentPartAddedEvent(_ContentEvent):
    type: Literal["response.content_part.added"] = "response.content_part.added"
    part: OutputTextContent


class ResponseContentPartDoneEvent(_ContentEvent):
    type: Literal["response.content_part.done"] = "response.content_part.done"
    part: OutputTextContent


class ResponseTextDeltaEvent(_ContentEvent):
    type: Literal["response.output_text.delta"] = "response.output_text.delta"
    delta: str
    logprobs: list[Any] = []


class ResponseTextDoneEvent(_ContentEvent):
    type: Literal["response.output_text.done"] = "response.output_text.done"
    text: str
    logprobs: list[Any] = []


class ResponseFunctionCallArgumentsDeltaEvent(_ItemEvent):
    type: Literal["response.function_call_arguments.delta"] = (
        "response.function_call_arguments.delta"
    )
    delta: str


class ResponseFunctionCallArgumentsDoneEvent(_ItemEvent):
    type: Literal["response.function_call_arguments.done"] = (
        "response.function_call_arguments.done"
    )
    arguments: str


class ResponseReasoningSummaryPartAddedEvent(_SummaryEvent):
    type: Literal["response.reasoning_summary_part.added"] = (
        "response.reasoning_summary_part.added"
    )
    part: SummaryPart


class ResponseReasoningSummaryPartDoneEvent(_SummaryEvent):
    type: Literal["response.reasoning_summary_part.done"] = "response.reasoning_summary_part.done"
    part: SummaryPart


class ResponseReasoningSummaryTextDeltaEvent(_SummaryEvent):
    type: Literal["response.reasoning_summary_text.delta"] = (
        "response.reasoning_summary_text.delta"
    )
    delta: str


class ResponseReasoningSummaryTextDoneEvent(_SummaryEvent):
    type: Literal["response.reasoning_summary_text.done"] = "response.reasoning_summary_text.done"
    text: str


class ResponseErrorEvent(_Event):
    """A failure after the first byte, which ends the stream. Its fields are both flat (code,
    message, param: OpenAI's documented ResponseErrorEvent) and nested under `error` (what the
    live API sends), because the SDK's Stream raises APIError only on a truthy `error` key of an
    event's data (openai/_streaming.py, legacy mode, which responses.create uses)."""

    type: Literal["error"] = "error"
    code: str
    message: str
    param: str | None
    error: OpenAIErrorDetail


Event = (
    ResponseCreatedEvent
    | ResponseInProgressEvent
    | ResponseCompletedEvent
    | ResponseIncompleteEvent
    | ResponseOutputItemAddedEvent
    | ResponseOutputItemDoneEvent
    | ResponseContentPartAddedEvent
    | ResponseContentPartDoneEvent
    | ResponseTextDeltaEvent
    | ResponseTextDoneEvent
    | ResponseFunctionCallArgumentsDeltaEvent
    | ResponseFunctionCallArgumentsDoneEvent
    | ResponseReasoningSummaryPartAddedEvent
    | ResponseReasoningSummaryPartDoneEvent
    | ResponseReasoningSummaryTextDeltaEvent
    | ResponseReasoningSummaryTextDoneEvent
    | ResponseErrorEvent
)


class ResponseStreamEvent(RootModel[Annotated[Event, Field(discriminator="type")]]):
    """The data of one event of a streamed response, sent as `event: <its type>`."""
