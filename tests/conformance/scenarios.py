"""The scenarios: each one is data (the requests, in neutral form, and the faults to inject) plus
what the client must get back. The test module runs every scenario through every client, upstream
and mode, and checks the provider's side against the same data.

The simulator's replies are deterministic: `Simulated reply from {model}: {last user text}`, cut
by stop sequences and token limits; with tools declared, one call to the first (or the named)
tool with arguments `{"query": <last user text>}` (a strict tool's: an instance of its schema,
its strings that text; Gemini, which has no strict flag, always answers with such an instance of
the declared schema); after tool results, `tool said: {results}`. Asked for structured output,
the text is an instance of the schema whose strings are that reply; asked to reason, an upstream
that shows reasoning (Anthropic's thinking, OpenAI's Responses summaries, Gemini's thoughts)
first thinks `Simulated thinking about: {what the reply answers}`.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .conversation import (
    UPSTREAMS,
    Answer,
    Call,
    Conversation,
    Family,
    Finish,
    Image,
    Mode,
    OutputSchema,
    Reasoning,
    Tool,
    assistant,
    tool_result,
    user,
)

TOKEN = re.compile(r"\s*\S+")  # the simulator's tokens: words with their leading whitespace


@dataclass(frozen=True)
class Expect:
    """What the client must get for one request."""

    reply: str = ""  # the simulator's text after "Simulated reply from {model}: "
    cut: int | None = None  # only the first `cut` tokens of the text arrive (token limit, broken stream)
    finish: Finish = "stop"
    stop_sequence: str | None = None  # the stop sequence that ends the reply
    call: tuple[str, dict[str, Any]] | None = None  # one tool call: the tool's name, its arguments
    usage: tuple[int, int] | None = None  # input and output tokens
    error: tuple[str, int | None] | None = None  # what the client raises: a neutral kind, the HTTP status
    # Structured output: the JSON value the text must be, given the reply's full text (which the
    # simulator puts in every free string of the schema).
    structured: Callable[[str], Any] | None = None
    thinks: bool = False  # reasoning was asked for: an upstream that reasons shows it first

    def thinking(self) -> str:
        """The simulator's thinking about the reply's subject, when reasoning is asked for."""
        return f"Simulated thinking about: {self.reply}" if self.thinks else ""

    def text(self, model: str) -> str:
        full = f"Simulated reply from {model}: {self.reply}"
        return full if self.cut is None else "".join(TOKEN.findall(full)[: self.cut])


@dataclass(frozen=True)
class Step:
    """One request of a scenario. `build` may read the previous step's answer (a tool call to
    answer, for instance)."""

    build: Callable[[Answer | None], Conversation]
    expect: Expect
    fault: dict[str, Any] | None = None  # queued in the simulator before the request


Plan = Callable[[Mode, Family], tuple[Step, ...]]


@dataclass(frozen=True)
class Scenario:
    name: str  # the column of the matrix
    plan: Plan  # the steps, which may depend on the mode and the upstream's family


def ask(conversation: Conversation) -> Callable[[Answer | None], Conversation]:
    return lambda previous: conversation


def fixed(*steps: Step) -> Plan:
    return lambda mode, family: steps


def one(conversation: Conversation, expect: Expect) -> Plan:
    return fixed(Step(ask(conversation), expect))


# --- data ------------------------------------------------------------------------------------------

PNG = Image(
    media_type="image/png",
    data=base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
    ),
)
PHOTO_URL = Image(url="https://example.com/photo.jpg")
CLOCK = Tool("clock", "The current time in a city.", {"type": "object", "properties": {"city": {"type": "string"}}})
LOOKUP = Tool(
    "lookup",
    "Look a question up.",
    {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
)
# A strict tool's schema, as strict mode wants it (every property required, no others); the
# simulator's call matches it, where a loose tool's call is only {"query": ...}.
STRICT_LOOKUP = Tool(
    "lookup",
    "Look a question up.",
    {
        "type": "object",
        "properties": {"query": {"type": "string"}, "units": {"type": "string", "enum": ["metric", "imperial"]}},
        "required": ["query", "units"],
        "additionalProperties": False,
    },
    strict=True,
)
WEATHER = OutputSchema(
    "weather",
    {
        "type": "object",
        "properties": {"city": {"type": "string"}, "celsius": {"type": "number"}},
        "required": ["city", "celsius"],
        "additionalProperties": False,
    },
)
QUESTION = "weather in Paris"
LOOKUP_SAID, CLOCK_SAID = "sunny, 21 C", "14:05"
PLAIN = Conversation((user("Say hello"),))
LONG = Conversation((user("a b c d e f"),))
COUNTING = " ".join(str(n) for n in range(1, 21))  # more words than a limit of 16 lets through


def answer_the_calls(previous: Answer | None) -> Conversation:
    """The assistant's call as the client got it, plus a parallel call to `clock` as if the model
    had made that one too; then both results, in one turn (consecutive tool messages for OpenAI)."""
    [call] = previous.calls if previous else [Call("missing", "lookup", "{}")]
    clock = Call(f"{call.id}_2", "clock", json.dumps({"city": "Paris"}))
    turns = (user(QUESTION), assistant(calls=(call, clock)), tool_result(call.id, LOOKUP_SAID),
             tool_result(clock.id, CLOCK_SAID))
    return Conversation(turns, tools=(CLOCK, LOOKUP))


TOOLS = fixed(
    # `lookup` is named although `clock` is declared first: the tool choice must travel too.
    Step(
        ask(Conversation((user(QUESTION),), tools=(CLOCK, LOOKUP), tool_choice="lookup")),
        Expect(finish="tool", call=("lookup", {"query": QUESTION})),
    ),
    Step(answer_the_calls, Expect(reply=f"tool said: {LOOKUP_SAID}; {CLOCK_SAID}")),
)


REASONING = fixed(
    Step(ask(Conversation((user("Think it over"),), reasoning=Reasoning("medium"))),
         Expect(reply="Think it over", thinks=True)),
    # A budget under 4,096 tokens is effort "low" (docs/TRANSLATION.md); it must stay under max_tokens.
    Step(ask(Conversation((user("Think it through"),), max_tokens=4096, reasoning=Reasoning("low", budget=2048))),
         Expect(reply="Think it through", thinks=True)),
)


def continued_responses(mode: Mode, family: Family) -> tuple[Step, ...]:
    """Three turns, each sending only its new user turn and the id of the response before it: the
    upstream gets the whole conversation (relayed to OpenAI, which keeps its own responses, the
    id alone), and its replies answer the last turn."""
    first = Expect(reply="Hi").text(UPSTREAMS[family].model)  # the first answer's text

    def second(previous: Answer | None) -> Conversation:
        assert previous is not None and previous.response_id, "the first response has no id"
        return Conversation((user("Hi"), assistant(previous.text), user("And again?")),
                            previous_response_id=previous.response_id, continued=2)

    def third(previous: Answer | None) -> Conversation:
        assert previous is not None and previous.response_id, "the second response has no id"
        turns = (user("Hi"), assistant(first), user("And again?"), assistant(previous.text), user("Once more"))
        return Conversation(turns, previous_response_id=previous.response_id, continued=4)

    return (
        Step(ask(Conversation((user("Hi"),))), Expect(reply="Hi")),
        Step(second, Expect(reply="And again?")),
        Step(third, Expect(reply="Once more")),
    )


def errors_before_the_first_byte(mode: Mode, family: Family) -> tuple[Step, ...]:
    return (
        Step(ask(PLAIN), Expect(error=("unavailable", 502)), {"status": 500}),
        Step(ask(PLAIN), Expect(error=("rate_limited", 429)), {"status": 429}),
    )


def errors_midway(mode: Mode, family: Family) -> tuple[Step, ...]:
    faults = ({"reset_after_tokens": 2}, {"error_event_after_tokens": 2})
    if mode == "stream":
        # Two tokens arrive, then the client's SDK raises while it iterates.
        broken = Expect(reply="a b c d e f", cut=2, error=("error_event", None))
        return tuple(Step(ask(LONG), broken, fault) for fault in faults)
    # Without a stream to break, the simulator resets the connection (502), or answers with the
    # status its family uses for a failure (OpenAI 500 -> 502; Anthropic 529, overloaded -> 503).
    statuses = (502, 502 if family == "openai" else 503)
    return tuple(
        Step(ask(LONG), Expect(error=("unavailable", status)), fault) for fault, status in zip(faults, statuses)
    )


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("plain", one(PLAIN, Expect(reply="Say hello"))),
    Scenario(
        "system",
        # Two instructions: an OpenAI client sends a system and a developer message.
        one(Conversation((user("Hi there"),), system="Be brief.\nAnswer in English."), Expect(reply="Hi there")),
    ),
    Scenario(
        "multi-turn",
        one(Conversation((user("Hi"), assistant("Hello"), user("And again?"))), Expect(reply="And again?")),
    ),
    Scenario("tools", TOOLS),
    Scenario(
        "image",
        # Inline data (a data URL for OpenAI, a base64 source for Anthropic) and a URL.
        one(Conversation((user("What is in these pictures?", PNG, PHOTO_URL),)),
            Expect(reply="What is in these pictures? [images: 2]")),
    ),
    Scenario(
        "stop",
        one(Conversation((user("alpha beta gamma delta"),), stop=("gamma", "omega")),
            Expect(reply="alpha beta ", finish="stop_sequence", stop_sequence="gamma")),
    ),
    Scenario(
        "max-tokens",
        # 16: the least the Responses API takes as max_output_tokens.
        one(Conversation((user(COUNTING),), max_tokens=16), Expect(reply=COUNTING, cut=16, finish="length")),
    ),
    Scenario(
        "usage",
        # Input: the words the model reads (3); output: one token per word of the reply (7).
        one(Conversation((user("one two three"),)), Expect(reply="one two three", usage=(3, 7))),
    ),
    Scenario("error-before", errors_before_the_first_byte),
    Scenario("error-midway", errors_midway),
    Scenario(
        "structured",
        # The number is the simulator's for any number; every string is the reply's text.
        one(Conversation((user(QUESTION),), output=WEATHER),
            Expect(reply=QUESTION, structured=lambda said: {"city": said, "celsius": 1.5})),
    ),
    Scenario(
        "strict-tools",
        one(Conversation((user(QUESTION),), tools=(STRICT_LOOKUP,)),
            Expect(finish="tool", call=("lookup", {"query": QUESTION, "units": "metric"}))),
    ),
    Scenario("reasoning", REASONING),
    Scenario("previous-response", continued_responses),
)
