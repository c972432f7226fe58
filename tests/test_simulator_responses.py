"""The simulator's OpenAI Responses API, driven by the official openai SDK: what it parses is the
wire shape the router's same-family relay will meet."""

# As for test_simulator (setup.cfg): hand-written request dicts and the SDK's Optional unions are
# what these tests assert on, not what mypy should check. Everything else in it is checked.
# mypy: disable-error-code="arg-type, union-attr, index, list-item, misc, call-overload, attr-defined"

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx2
import openai
import pytest
from pydantic import BaseModel

from ai_router.simulator.responses import ResponseStore, Stored
from ai_router.wire import openai_responses as wire
from ai_router.wire import sse

TEXT = "Simulated reply from m: hello there world"
LOOKUP = {"type": "function", "name": "lookup", "description": "Look it up",
          "parameters": {"type": "object", "properties": {"query": {"type": "string"}},
                         "required": ["query"], "additionalProperties": False}}


@pytest.fixture(scope="module")
def control(sim: str) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=sim, timeout=10) as client:
        yield client


@pytest.fixture(autouse=True)
def clean(control: httpx2.Client) -> None:
    control.post("/_sim/reset").raise_for_status()


def add_faults(control: httpx2.Client, *faults: dict[str, Any]) -> None:
    control.post("/_sim/faults", json={"faults": list(faults)}).raise_for_status()


def received(control: httpx2.Client) -> list[dict[str, Any]]:
    requests: list[dict[str, Any]] = control.get("/_sim/requests").json()["requests"]
    return requests


def raw_events(sim: str, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(the `event:` line, the data) of each event of a streamed create."""
    response = httpx2.post(f"{sim}/v1/responses", json={**body, "stream": True},
                           headers={"authorization": "Bearer k"}, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    blocks, rest = sse.split_events(response.content)
    assert rest == b""
    pairs = []
    for block in blocks:
        names = [line[len(b"event: "):].decode() for line in block.split(b"\n") if line.startswith(b"event: ")]
        data = sse.data_of(block)
        assert len(names) == 1 and data is not None
        pairs.append((names[0], json.loads(data)))
    return pairs


# ---- create, unary ------------------------------------------------------------------------------


def test_create_answers_a_text_and_records_exactly_what_it_received(
        sim_oai: openai.OpenAI, control: httpx2.Client) -> None:
    raw = sim_oai.responses.with_raw_response.create(model="m", input="hello there world", instructions="be brief")
    response = raw.parse()

    assert raw.headers["x-request-id"].startswith("req_sim_")
    assert response.id.startswith(wire.RESPONSE_ID_PREFIX) and response.object == "response"
    assert response.status == "completed" and response.incomplete_details is None
    assert response.output_text == TEXT
    [message] = response.output
    assert message.type == "message" and message.role == "assistant" and message.status == "completed"
    assert message.id.startswith(wire.MESSAGE_ID_PREFIX)
    assert message.content[0].type == "output_text" and message.content[0].annotations == []
    # Input: the instructions' 2 words and the input's 3; output: 7 words.
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.total_tokens) == (5, 7, 12)
    assert response.usage.input_tokens_details.cached_tokens == 0
    assert response.usage.output_tokens_details.reasoning_tokens == 0
    assert (response.instructions, response.model, response.store) == ("be brief", "m", True)
    assert (response.parallel_tool_calls, response.tool_choice, response.tools) == (True, "auto", [])

    [request] = received(control)
    assert (request["method"], request["path"]) == ("POST", "/v1/responses")
    assert request["body"] == {"model": "m", "input": "hello there world", "instructions": "be brief"}
    assert request["headers"]["authorization"] == "Bearer k"


def test_input_items_with_parts_and_images(sim_oai: openai.OpenAI) -> None:
    response = sim_oai.responses.create(model="m", input=[
        {"role": "developer", "content": "terse"},
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "part one"}, {"type": "input_text", "text": " and two"},
            {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "auto"}]},
    ])
    assert response.output_text == "Simulated reply from m: part one and two [images: 1]"
    assert response.usage is not None and response.usage.input_tokens == 1 + 4 + 1


def test_max_output_tokens_makes_the_response_incomplete(sim_oai: openai.OpenAI) -> None:
    response = sim_oai.responses.create(model="m", input="hello there world", max_output_tokens=3)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None and response.incomplete_details.reason == "max_output_tokens"
    assert response.output_text == "Simulated reply from"
    assert response.output[0].status == "incomplete"
    assert response.usage is not None and response.usage.output_tokens == 3
    assert response.max_output_tokens == 3


# ---- create, stream -----------------------------------------------------------------------------


def test_stream_events_in_order_with_event_lines_and_sequence_numbers(sim: str) -> None:
    events = raw_events(sim, {"model": "m", "input": "hello there world"})

    assert [name for name, _ in events] == [
        wire.RESPONSE_CREATED, wire.RESPONSE_IN_PROGRESS, wire.OUTPUT_ITEM_ADDED, wire.CONTENT_PART_ADDED,
        *[wire.OUTPUT_TEXT_DELTA] * 7, wire.OUTPUT_TEXT_DONE, wire.CONTENT_PART_DONE, wire.OUTPUT_ITEM_DONE,
        wire.RESPONSE_COMPLETED]
    assert all(name == data["type"] for name, data in events)
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    created = events[0][1]["response"]
    assert (created["status"], created["output"], created["usage"]) == ("in_progress", [], None)
    deltas = [data for name, data in events if name == wire.OUTPUT_TEXT_DELTA]
    assert "".join(d["delta"] for d in deltas) == TEXT
    item_id = events[2][1]["item"]["id"]
    assert all((d["item_id"], d["output_index"], d["content_index"]) == (item_id, 0, 0) for d in deltas)
    final = events[-1][1]["response"]
    assert final["id"] == created["id"] and final["status"] == "completed"
    assert final["output"][0]["content"][0]["text"] == TEXT
    assert final["usage"]["output_tokens"] == 7


def test_sdk_stream_helper_gives_the_final_response_that_retrieve_returns(sim_oai: openai.OpenAI) -> None:
    with sim_oai.responses.stream(model="m", input="hello there world") as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == TEXT
    stored = sim_oai.responses.retrieve(final.id)
    # The helper's final response adds `parsed` to each output text; the rest is what was stored.
    assert (stored.output_text, stored.status, stored.usage) == (final.output_text, final.status, final.usage)
    assert [item.id for item in stored.output] == [item.id for item in final.output]


def test_stream_cut_by_the_limit_ends_with_response_incomplete(sim_oai: openai.OpenAI) -> None:
    events = list(sim_oai.responses.create(model="m", input="hello there world", max_output_tokens=2, stream=True))
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.incomplete_details.reason == "max_output_tokens"
    assert events[-1].response.output_text == "Simulated reply"
    assert [e.item.status for e in events if e.type == "response.output_item.done"] == ["incomplete"]


# ---- reasoning ----------------------------------------------------------------------------------


def test_reasoning_with_a_summary_comes_first_and_counts_as_output(sim_oai: openai.OpenAI) -> None:
    response = sim_oai.responses.create(model="m", input="hello", reasoning={"effort": "low", "summary": "auto"})
    reasoning, message = response.output
    assert reasoning.type == "reasoning" and reasoning.id.startswith(wire.REASONING_ID_PREFIX)
    assert [s.text for s in reasoning.summary] == ["Simulated thinking about: hello"]
    assert message.type == "message" and response.output_text == "Simulated reply from m: hello"
    assert response.usage is not None
    assert response.usage.output_tokens_details.reasoning_tokens == 4
    assert response.usage.output_tokens == 4 + 5
    assert response.reasoning is not None and response.reasoning.summary == "auto"


def test_reasoning_without_a_summary_is_an_empty_item_and_effort_none_is_none(sim_oai: openai.OpenAI) -> None:
    response = sim_oai.responses.create(model="m", input="hello", reasoning={"effort": "medium"},
                                        include=["reasoning.encrypted_content"])
    assert [item.type for item in response.output] == ["reasoning", "message"]
    assert response.output[0].summary == [] and response.output[0].encrypted_content
    assert response.usage is not None and response.usage.output_tokens_details.reasoning_tokens == 4

    plain = sim_oai.responses.create(model="m", input="hello", reasoning={"effort": "none"})
    assert [item.type for item in plain.output] == ["message"]


def test_reasoning_that_takes_the_whole_limit_leaves_no_message(sim_oai: openai.OpenAI) -> None:
    response = sim_oai.responses.create(model="m", input="hello", reasoning={"effort": "low"}, max_output_tokens=4)
    assert response.status == "incomplete"
    assert [item.type for item in response.output] == ["reasoning"]


def test_reasoning_summary_stream_events(sim: str) -> None:
    events = raw_events(sim, {"model": "m", "input": "hi", "reasoning": {"effort": "low", "summary": "detailed"}})
    names = [name for name, _ in events]
    assert names == [
        wire.RESPONSE_CREATED, wire.RESPONSE_IN_PROGRESS,
        wire.OUTPUT_ITEM_ADDED, wire.REASONING_SUMMARY_PART_ADDED, *[wire.REASONING_SUMMARY_TEXT_DELTA] * 4,
        wire.REASONING_SUMMARY_TEXT_DONE, wire.REASONING_SUMMARY_PART_DONE, wire.OUTPUT_ITEM_DONE,
        wire.OUTPUT_ITEM_ADDED, wire.CONTENT_PART_ADDED, *[wire.OUTPUT_TEXT_DELTA] * 5, wire.OUTPUT_TEXT_DONE,
        wire.CONTENT_PART_DONE, wire.OUTPUT_ITEM_DONE, wire.RESPONSE_COMPLETED]
    summary = "".join(d["delta"] for n, d in events if n == wire.REASONING_SUMMARY_TEXT_DELTA)
    assert summary == "Simulated thinking about: hi"
    assert [d["output_index"] for n, d in events if n == wire.OUTPUT_ITEM_DONE] == [0, 1]
    assert [d["sequence_number"] for _, d in events] == list(range(len(events)))


# ---- structured output --------------------------------------------------------------------------


class Weather(BaseModel):
    city: str
    degrees: int
    sunny: bool


def test_parse_with_a_pydantic_text_format(sim_oai: openai.OpenAI, control: httpx2.Client) -> None:
    parsed = sim_oai.responses.parse(model="m", input="weather in Paris", text_format=Weather)
    assert parsed.output_parsed == Weather(city="Simulated reply from m: weather in Paris", degrees=1, sunny=True)
    sent = received(control)[-1]["body"]["text"]["format"]
    assert (sent["type"], sent["name"], sent["strict"]) == ("json_schema", "Weather", True)


def test_json_object_format_answers_a_json_object(sim_oai: openai.OpenAI) -> None:
    response = sim_oai.responses.create(model="m", input="give json", text={"format": {"type": "json_object"}})
    assert json.loads(response.output_text) == {"reply": "Simulated reply from m: give json"}
    assert response.text is not None and response.text.format.type == "json_object"


# ---- function calls and multi-turn --------------------------------------------------------------


def test_function_call_then_its_output_through_previous_response_id(sim_oai: openai.OpenAI) -> None:
    first = sim_oai.responses.create(model="m", input="find cats", tools=[LOOKUP])
    [call] = first.output
    assert call.type == "function_call" and call.name == "lookup"
    assert call.call_id.startswith("call_sim_") and call.id is not None and call.id.startswith("fc_")
    assert json.loads(call.arguments) == {"query": "find cats"}

    second = sim_oai.responses.create(model="m", previous_response_id=first.id, tools=[LOOKUP], input=[
        {"type": "function_call_output", "call_id": call.call_id, "output": "3 cats"}])
    assert second.output_text == "Simulated reply from m: tool said: 3 cats"
    assert second.previous_response_id == first.id
    assert first.usage is not None and second.usage is not None
    assert second.usage.input_tokens_details.cached_tokens == first.usage.input_tokens


def test_continuation_reads_the_conversation_as_the_chat_endpoint_reads_its_messages(
        sim_oai: openai.OpenAI) -> None:
    first = sim_oai.responses.create(model="m", input="find cats", tools=[LOOKUP], instructions="be kind")
    call = first.output[0]
    assert call.type == "function_call"
    chained = sim_oai.responses.create(model="m", previous_response_id=first.id, input=[
        {"type": "function_call_output", "call_id": call.call_id, "output": "3 cats"},
        {"role": "user", "content": "and dogs?"}])
    # Without state: the same conversation sent whole, the earlier output passed back.
    stateless = sim_oai.responses.create(model="m", input=[
        {"role": "user", "content": "find cats"}, call.model_dump(exclude_none=True),
        {"type": "function_call_output", "call_id": call.call_id, "output": "3 cats"},
        {"role": "user", "content": "and dogs?"}])
    chat = sim_oai.chat.completions.create(model="m", messages=[
        {"role": "user", "content": "find cats"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call.call_id, "type": "function", "function": {"name": "lookup", "arguments": call.arguments}}]},
        {"role": "tool", "tool_call_id": call.call_id, "content": "3 cats"},
        {"role": "user", "content": "and dogs?"}])

    # The instructions of the first response are not carried over, as in the real API.
    assert chained.output_text == stateless.output_text == chat.choices[0].message.content
    assert chained.output_text == "Simulated reply from m: and dogs?"
    assert chained.usage is not None and stateless.usage is not None and chat.usage is not None
    assert chained.usage.input_tokens == stateless.usage.input_tokens == chat.usage.prompt_tokens


def test_multi_turn_text_with_previous_response_id(sim_oai: openai.OpenAI) -> None:
    first = sim_oai.responses.create(model="m", input="hello there world")
    second = sim_oai.responses.create(model="m", input="and again", previous_response_id=first.id)
    third = sim_oai.responses.create(model="m", input="once more", previous_response_id=second.id)
    assert third.output_text == "Simulated reply from m: once more"
    # 3 + 7 (first turn) + 2 + 6 (second) + 2.
    assert third.usage is not None and third.usage.input_tokens == 20


def test_strict_is_the_default_and_arguments_match_the_schema(sim_oai: openai.OpenAI) -> None:
    city = {"type": "function", "name": "weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}}}
    strict = sim_oai.responses.create(model="m", input="Paris", tools=[city])
    assert strict.output[0].type == "function_call"
    assert json.loads(strict.output[0].arguments) == {"city": "Paris", "days": 1}
    assert strict.tools[0].strict is True

    loose = sim_oai.responses.create(model="m", input="Paris", tools=[{**city, "strict": False}])
    assert loose.output[0].type == "function_call"
    assert json.loads(loose.output[0].arguments) == {"query": "Paris"}


def test_tool_choice_names_a_function_or_turns_calls_off(sim_oai: openai.OpenAI) -> None:
    other = {**LOOKUP, "name": "other"}
    named = sim_oai.responses.create(model="m", input="x", tools=[LOOKUP, other],
                                     tool_choice={"type": "function", "name": "other"})
    assert named.output[0].type == "function_call" and named.output[0].name == "other"
    off = sim_oai.responses.create(model="m", input="x", tools=[LOOKUP], tool_choice="none")
    assert off.output_text == "Simulated reply from m: x"


def test_function_call_stream_events(sim: str) -> None:
    events = raw_events(sim, {"model": "m", "input": "find cats", "tools": [LOOKUP]})
    assert [name for name, _ in events] == [
        wire.RESPONSE_CREATED, wire.RESPONSE_IN_PROGRESS, wire.OUTPUT_ITEM_ADDED,
        *[wire.FUNCTION_CALL_ARGUMENTS_DELTA] * 3, wire.FUNCTION_CALL_ARGUMENTS_DONE, wire.OUTPUT_ITEM_DONE,
        wire.RESPONSE_COMPLETED]
    added = events[2][1]["item"]
    assert (added["type"], added["status"], added["arguments"], added["name"]) == (
        "function_call", "in_progress", "", "lookup")
    arguments = "".join(d["delta"] for n, d in events if n == wire.FUNCTION_CALL_ARGUMENTS_DELTA)
    assert arguments == events[6][1]["arguments"] == json.dumps({"query": "find cats"})
    assert events[7][1]["item"]["call_id"] == added["call_id"]


@pytest.mark.parametrize(("items", "message"), [
    ([{"type": "function_call_output", "call_id": "call_x", "output": "?"}],
     "No tool call found for function call output with call_id call_x."),
    ([{"role": "user", "content": "hi"},
      {"type": "function_call", "call_id": "call_y", "name": "lookup", "arguments": "{}"},
      {"role": "user", "content": "and?"}],
     "No tool output found for function call call_y."),
])
def test_calls_and_outputs_must_pair_up(sim_oai: openai.OpenAI, items: list[Any], message: str) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        sim_oai.responses.create(model="m", input=items)
    assert err.value.body["message"] == message
    assert err.value.body["param"] == "input"


# ---- stored responses ---------------------------------------------------------------------------


def test_unknown_previous_response_id_is_the_apis_400(sim_oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        sim_oai.responses.create(model="m", input="hi", previous_response_id="resp_nope")
    assert err.value.body == {"message": "Previous response with id 'resp_nope' not found.",
                              "type": "invalid_request_error", "param": "previous_response_id",
                              "code": "previous_response_not_found"}


def test_store_false_keeps_nothing(sim_oai: openai.OpenAI) -> None:
    response = sim_oai.responses.create(model="m", input="hi", store=False)
    assert response.store is False
    with pytest.raises(openai.NotFoundError):
        sim_oai.responses.retrieve(response.id)
    with pytest.raises(openai.BadRequestError):
        sim_oai.responses.create(model="m", input="hi", previous_response_id=response.id)


def test_retrieve_and_delete(sim_oai: openai.OpenAI, sim: str) -> None:
    created = sim_oai.responses.create(model="m", input="hello there world")
    assert sim_oai.responses.retrieve(created.id) == created

    deleted = httpx2.delete(f"{sim}/v1/responses/{created.id}", headers={"authorization": "Bearer k"})
    assert deleted.json() == {"id": created.id, "object": "response.deleted", "deleted": True}
    with pytest.raises(openai.NotFoundError) as err:
        sim_oai.responses.retrieve(created.id)
    assert err.value.body["message"] == f"Response with id '{created.id}' not found."
    with pytest.raises(openai.NotFoundError):
        sim_oai.responses.delete(created.id)

    again = sim_oai.responses.create(model="m", input="x")
    sim_oai.responses.delete(again.id)  # the SDK reads nothing of the answer, only its status
    with pytest.raises(openai.NotFoundError):
        sim_oai.responses.input_items.list(again.id)


def test_input_items_list_newest_first_with_paging(sim_oai: openai.OpenAI) -> None:
    response = sim_oai.responses.create(model="m", input=[
        {"role": "user", "content": "one"}, {"role": "assistant", "content": "two"},
        {"role": "user", "content": "three"}])
    page = sim_oai.responses.input_items.list(response.id)
    assert [item.content[0].text for item in page.data] == ["three", "two", "one"]
    assert [item.type for item in page.data] == ["message"] * 3
    assert len({item.id for item in page.data}) == 3 and not page.has_more

    first = sim_oai.responses.input_items.list(response.id, order="asc", limit=2)
    assert [item.content[0].text for item in first.data] == ["one", "two"]
    assert first.has_more and first.last_id == first.data[-1].id
    # The SDK follows `after` to the next page.
    assert [item.id for item in first] == [item.id for item in reversed(page.data)]


def test_reset_forgets_stored_responses(sim_oai: openai.OpenAI, control: httpx2.Client) -> None:
    response = sim_oai.responses.create(model="m", input="hi")
    control.post("/_sim/reset").raise_for_status()
    with pytest.raises(openai.NotFoundError):
        sim_oai.responses.retrieve(response.id)


def test_the_store_drops_the_oldest_beyond_its_limit() -> None:
    store = ResponseStore(limit=2)
    for n in range(3):
        store.put(Stored({"id": f"resp_{n}"}, (), ()))
    assert store.get("resp_0") is None
    assert store.get("resp_1") is not None and store.get("resp_2") is not None


# ---- errors, auth and faults --------------------------------------------------------------------


def test_missing_key_and_bad_requests_are_openai_errors(sim: str, sim_oai: openai.OpenAI) -> None:
    r = httpx2.post(f"{sim}/v1/responses", json={"model": "m", "input": "hi"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert httpx2.get(f"{sim}/v1/responses/resp_x").status_code == 401

    with pytest.raises(openai.BadRequestError) as err:
        sim_oai.responses.create(model="", input="hi")
    assert err.value.body["param"] == "model"
    with pytest.raises(openai.BadRequestError) as err:
        sim_oai.responses.create(model="m", input=[{"type": "web_search_call", "id": "ws_1"}])
    assert err.value.body["param"] == "input[0].type"
    with pytest.raises(openai.BadRequestError) as err:
        sim_oai.responses.create(model="m", input="x", conversation="conv_1")
    assert err.value.body["param"] == "conversation"
    with pytest.raises(openai.BadRequestError) as err:
        sim_oai.responses.create(model="m", input="x", tools=[LOOKUP], tool_choice={"type": "function", "name": "no"})
    assert err.value.body["param"] == "tool_choice"


def test_status_fault_and_delay(control: httpx2.Client, sim_oai: openai.OpenAI) -> None:
    add_faults(control, {"status": 429, "retry_after": 2, "message": "slow down"})
    with pytest.raises(openai.RateLimitError) as err:
        sim_oai.responses.create(model="m", input="hi")
    assert err.value.response.headers["retry-after"] == "2"
    assert err.value.body["message"] == "slow down"
    add_faults(control, {"status": 500})
    with pytest.raises(openai.InternalServerError):
        sim_oai.responses.retrieve("resp_whatever")  # stored-response endpoints take faults too
    assert sim_oai.responses.create(model="m", input="hi").status == "completed"
    assert control.get("/_sim/faults").json() == {"faults": []}


def test_error_event_mid_stream_stores_nothing(control: httpx2.Client, sim_oai: openai.OpenAI) -> None:
    add_faults(control, {"error_event_after_tokens": 2, "message": "boom"})
    events = list(sim_oai.responses.create(model="m", input="hello there world", stream=True))
    assert [e.type for e in events][-3:] == ["response.output_text.delta"] * 2 + ["error"]
    error = events[-1]
    assert error.type == "error" and error.message == "boom" and error.code == "server_error"
    assert error.sequence_number == events[-2].sequence_number + 1
    created = events[0]
    assert created.type == "response.created"
    with pytest.raises(openai.NotFoundError):
        sim_oai.responses.retrieve(created.response.id)

    add_faults(control, {"error_event_after_tokens": 2})
    with pytest.raises(openai.InternalServerError):
        sim_oai.responses.create(model="m", input="hi")


def test_reset_and_garbled_mid_stream(control: httpx2.Client, sim_oai: openai.OpenAI) -> None:
    add_faults(control, {"reset_after_tokens": 1}, {"garbled_after_tokens": 1})
    types: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        for event in sim_oai.responses.create(model="m", input="hello", stream=True):
            types.append(event.type)
    assert types[-1] == "response.output_text.delta" and types.count("response.output_text.delta") == 1

    deltas: list[str] = []
    with pytest.raises(json.JSONDecodeError):
        for event in sim_oai.responses.create(model="m", input="hello", stream=True):
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
    assert deltas == ["Simulated"]
