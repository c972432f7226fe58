"""The family-neutral vocabulary of the conformance suite.

A scenario states its request once, as a `Conversation`; each client adapter writes it in its own
wire format, and each upstream family's expected body is derived from it. What a client got back
is read into one `Answer`, whatever the SDK, so that assertions are written once.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any, Literal

Family = Literal["openai", "anthropic", "gemini", "bedrock"]
Mode = Literal["unary", "stream"]
# Why a reply ended, in neutral terms; each client family names these its own way.
Finish = Literal["stop", "length", "tool", "stop_sequence"]

# The providers' default_max_tokens in the config that tests/support.py writes.
ROUTER_DEFAULT_MAX_TOKENS = 64


@dataclass(frozen=True)
class Upstream:
    """One configured provider, as the router's clients name it and as the simulator sees it."""

    family: Family
    model: str  # the model name the upstream receives (and echoes in its replies)

    @property
    def route(self) -> str:
        """The model name a client sends, and reads back on the /v1 endpoints."""
        return f"{self.family}/{self.model}"


UPSTREAMS: dict[Family, Upstream] = {
    "openai": Upstream("openai", "gpt-4o-mini"),
    "anthropic": Upstream("anthropic", "claude-3-5-haiku-20241022"),
    # Reached by translation from every client (the router has no Gemini-shaped front door).
    "gemini": Upstream("gemini", "gemini-2.5-flash"),
    # Amazon Bedrock's Converse, a Claude model on it (one that thinks adaptively): signed
    # requests, an event-stream answer.
    "bedrock": Upstream("bedrock", "anthropic.claude-sonnet-4-6"),
}


@dataclass(frozen=True)
class Image:
    """An image inline (`media_type` and `data`), or by `url`."""

    media_type: str = ""
    data: bytes = b""
    url: str = ""

    @property
    def base64(self) -> str:
        return base64.b64encode(self.data).decode()

    @property
    def data_url(self) -> str:
        return f"data:{self.media_type};base64,{self.base64}"


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]  # a JSON schema
    strict: bool = False  # the call's arguments must match `parameters` exactly


@dataclass(frozen=True)
class OutputSchema:
    """Structured output: the answer is JSON matching `schema`. `name` is what OpenAI's APIs call
    the format; None where the client's API has no name for it (Anthropic's)."""

    name: str | None
    schema: dict[str, Any]
    strict: bool = True


@dataclass(frozen=True)
class Reasoning:
    """Reasoning asked for: OpenAI's effort, or for a client whose API has one, a thinking budget
    (`budget` tokens) that the router reads as that effort."""

    effort: str
    budget: int | None = None


@dataclass(frozen=True)
class Call:
    """A tool call: `arguments` is JSON text, as OpenAI and gRPC carry it."""

    id: str
    name: str
    arguments: str

    @property
    def input(self) -> Any:
        return json.loads(self.arguments)


@dataclass(frozen=True)
class Turn:
    role: Literal["user", "assistant", "tool"]
    text: str = ""
    images: tuple[Image, ...] = ()
    calls: tuple[Call, ...] = ()
    call_id: str = ""  # a tool turn: the call it answers


def user(text: str, *images: Image) -> Turn:
    return Turn("user", text, images)


def assistant(text: str = "", calls: tuple[Call, ...] = ()) -> Turn:
    return Turn("assistant", text, calls=calls)


def tool_result(call_id: str, text: str) -> Turn:
    return Turn("tool", text, call_id=call_id)


@dataclass(frozen=True)
class Conversation:
    """One request, as a scenario states it."""

    turns: tuple[Turn, ...]
    system: str = ""
    tools: tuple[Tool, ...] = ()
    tool_choice: str = ""  # the name of the tool to call; "" leaves the choice to the model
    stop: tuple[str, ...] = ()
    max_tokens: int | None = None
    output: OutputSchema | None = None
    reasoning: Reasoning | None = None
    # A continued Responses conversation: the response it continues, which holds the first
    # `continued` turns; a Responses client sends only the turns after them.
    previous_response_id: str = ""
    continued: int = 0

    @property
    def instructions(self) -> list[str]:
        """The system prompt as separate instructions, one per line: OpenAI clients send them as a
        system message then developer messages, gRPC clients as `system` then developer
        messages, and the router joins them with newlines."""
        return self.system.split("\n") if self.system else []


@dataclass
class Usage:
    input: int
    output: int
    total: int | None = None  # families that report a total (OpenAI, gRPC)


@dataclass
class Answer:
    """What a client got, read through its SDK. A stream's pieces are added as they arrive, so a
    stream broken midway leaves what was delivered before the error."""

    text: str = ""
    deltas: int = 0  # non-empty text pieces a stream delivered
    reasoning: str = ""  # the model's reasoning, where the client's API carries it
    reasoning_deltas: int = 0  # non-empty reasoning pieces a stream delivered
    calls: list[Call] = field(default_factory=list)
    argument_pieces: int = 0  # non-empty tool-argument pieces a stream delivered
    finish: str = ""
    ends: int = 0  # how many times the answer said it was finished: once, at its end
    stop_sequence: str | None = None  # Anthropic's: the stop sequence that ended the reply
    usage: Usage | None = None
    models: set[str] = field(default_factory=set)  # the model name(s) the answer carried
    error: Exception | None = None  # what the client raised
    sent: dict[str, Any] | None = None  # the JSON body the client put on the wire (HTTP clients)
    response_id: str = ""  # the id of a Responses answer, to continue it

    def end(self, finish: str) -> None:
        self.finish = finish
        self.ends += 1

    def add_text(self, piece: str | None) -> None:
        if piece:
            self.text += piece
            self.deltas += 1

    def add_reasoning(self, piece: str | None) -> None:
        if piece:
            self.reasoning += piece
            self.reasoning_deltas += 1

    def add_call_piece(self, index: int, call_id: str | None, name: str | None, arguments: str | None) -> None:
        """One piece of a streamed tool call; `index` tells the calls apart, in order."""
        while len(self.calls) <= index:
            self.calls.append(Call("", "", ""))
        call = self.calls[index]
        self.calls[index] = Call(
            call.id + (call_id or ""), call.name + (name or ""), call.arguments + (arguments or "")
        )
        if arguments:
            self.argument_pieces += 1
