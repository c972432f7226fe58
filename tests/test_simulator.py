"""The simulator, driven by the real openai and anthropic SDKs: if they accept it, so will the router."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from ai_router.simulator import SimulatorSettings, build_server

ROOT = Path(__file__).resolve().parents[1]
USER = [{"role": "user", "content": "hello there world"}]
# "Simulated reply from m: hello there world" is 7 whitespace-preserving words.
OPENAI_TEXT = "Simulated reply from m: hello there world"


@pytest.fixture(scope="module")
def control(sim: str) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=sim, timeout=10) as client:
        yield client


@pytest.fixture(autouse=True)
def clean(control: httpx2.Client) -> None:
    control.post("/_sim/reset").raise_for_status()


def add_faults(control: httpx2.Client, *faults: dict[str, Any]) -> None:
    control.post("/_sim/faults", json={"faults": list(faults)}).raise_for_status()


# ---- OpenAI Chat Completions --------------------------------------------------------------------


def test_openai_non_stream_answers_deterministically(sim_oai: openai.OpenAI) -> None:
    raw = sim_oai.chat.completions.with_raw_response.create(
        model="m", messages=[{"role": "system", "content": "be brief"}, *USER])
    completion = raw.parse()

    assert raw.headers["x-request-id"]
    assert completion.id.startswith("chatcmpl-sim-")
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == OPENAI_TEXT
    assert completion.choices[0].finish_reason == "stop"
    # Input counts words in every message, the system one included.
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (5, 7)
    assert completion.usage.total_tokens == 12


def test_openai_text_parts_are_concatenated(sim_oai: openai.OpenAI) -> None:
    content = [{"type": "text", "text": "part one"}, {"type": "text", "text": " and two"}]
    completion = sim_oai.chat.completions.create(model="m", messages=[{"role": "user", "content": content}])
    assert completion.choices[0].message.content == "Simulated reply from m: part one and two"


def test_openai_stream_sends_role_tokens_finish_usage_done(sim_oai: openai.OpenAI) -> None:
    chunks = list(sim_oai.chat.completions.create(
        model="m", messages=USER, stream=True, stream_options={"include_usage": True}))

    assert len({c.id for c in chunks}) == 1 and len({c.created for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[0].choices[0].delta.content == ""
    token_chunks = chunks[1:-2]
    assert [c.choices[0].delta.content for c in token_chunks] == [
        "Simulated", " reply", " from", " m:", " hello", " there", " world"]
    assert all(c.choices[0].finish_reason is None for c in token_chunks)
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (3, 7)


def test_openai_stream_without_include_usage_has_no_usage_chunk(sim_oai: openai.OpenAI) -> None:
    chunks = list(sim_oai.chat.completions.create(model="m", messages=USER, stream=True))
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.choices and c.usage is None for c in chunks)


@pytest.mark.parametrize("limit", ["max_completion_tokens", "max_tokens"])
def test_openai_max_tokens_cuts_with_length(sim_oai: openai.OpenAI, limit: str) -> None:
    completion = sim_oai.chat.completions.create(model="m", messages=USER, **{limit: 3})
    assert completion.choices[0].message.content == "Simulated reply from"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 3


def test_openai_max_completion_tokens_supersedes_max_tokens(sim_oai: openai.OpenAI) -> None:
    completion = sim_oai.chat.completions.create(model="m", messages=USER, max_tokens=2, max_completion_tokens=4)
    assert completion.usage.completion_tokens == 4


def test_openai_stop_sequence_cuts_before_it(sim_oai: openai.OpenAI) -> None:
    completion = sim_oai.chat.completions.create(model="m", messages=USER, stop=["nope", "there"])
    assert completion.choices[0].message.content == "Simulated reply from m: hello "
    assert completion.choices[0].finish_reason == "stop"

    chunks = list(sim_oai.chat.completions.create(model="m", messages=USER, stop="from", stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Simulated reply "
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_openai_models_list(sim_oai: openai.OpenAI) -> None:
    models = sim_oai.models.list()
    assert models.data and all(m.object == "model" for m in models.data)


# ---- Anthropic Messages -------------------------------------------------------------------------


def test_anthropic_non_stream_answers_deterministically(sim_ant: anthropic.Anthropic) -> None:
    raw = sim_ant.messages.with_raw_response.create(model="c", max_tokens=100, system="be brief", messages=USER)
    message = raw.parse()

    assert raw.headers["request-id"]
    assert message.id.startswith("msg_sim_")
    assert message.content[0].type == "text"
    assert message.content[0].text == "Simulated reply from c: hello there world"
    assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)
    assert (message.usage.input_tokens, message.usage.output_tokens) == (5, 7)


def test_anthropic_stream_event_sequence(sim_ant: anthropic.Anthropic) -> None:
    events = list(sim_ant.messages.create(model="c", max_tokens=100, messages=USER, stream=True))

    # ping is sent on the wire (right after content_block_start) but the SDK swallows it.
    assert [e.type for e in events] == (
        ["message_start", "content_block_start"] + ["content_block_delta"] * 7
        + ["content_block_stop", "message_delta", "message_stop"])
    assert events[0].message.usage.input_tokens == 3
    assert "".join(e.delta.text for e in events if e.type == "content_block_delta") == (
        "Simulated reply from c: hello there world")
    assert events[-2].delta.stop_reason == "end_turn"
    assert events[-2].usage.output_tokens == 7


def test_anthropic_stream_has_event_lines_and_ping(sim: str) -> None:
    body = {"model": "c", "max_tokens": 2, "messages": USER, "stream": True}
    response = httpx2.post(f"{sim}/v1/messages", json=body, headers={"x-api-key": "k"})
    names = [line[len("event: "):] for line in response.text.splitlines() if line.startswith("event: ")]
    assert names == ["message_start", "content_block_start", "ping", "content_block_delta",
                     "content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.headers["request-id"]


def test_anthropic_max_tokens_and_stop_sequences(sim_ant: anthropic.Anthropic) -> None:
    cut = sim_ant.messages.create(model="c", max_tokens=2, messages=USER)
    assert (cut.content[0].text, cut.stop_reason, cut.usage.output_tokens) == ("Simulated reply", "max_tokens", 2)

    with sim_ant.messages.stream(model="c", max_tokens=100, messages=USER, stop_sequences=["world"]) as stream:
        final = stream.get_final_message()
    assert final.content[0].text == "Simulated reply from c: hello there "
    assert (final.stop_reason, final.stop_sequence) == ("stop_sequence", "world")
    assert final.usage.output_tokens == 6


def test_stop_sequence_beyond_the_token_limit_reports_the_limit(sim_ant: anthropic.Anthropic) -> None:
    message = sim_ant.messages.create(model="c", max_tokens=2, messages=USER, stop_sequences=["world"])
    assert (message.stop_reason, message.stop_sequence) == ("max_tokens", None)


# ---- Auth, validation, unknown paths ------------------------------------------------------------


def test_missing_key_is_401_in_each_family_format(sim: str) -> None:
    r = httpx2.post(f"{sim}/v1/chat/completions", json={"model": "m", "messages": USER})
    assert r.status_code == 401
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    assert r.headers["x-request-id"]

    r = httpx2.post(f"{sim}/v1/messages", json={"model": "c", "max_tokens": 5, "messages": USER})
    assert r.status_code == 401
    assert r.json()["type"] == "error" and r.json()["error"]["type"] == "authentication_error"
    assert r.headers["request-id"]


def test_either_auth_header_is_accepted(sim: str) -> None:
    body = {"model": "c", "max_tokens": 5, "messages": USER}
    for headers in ({"authorization": "Bearer x"}, {"x-api-key": "x"}):
        assert httpx2.post(f"{sim}/v1/messages", json=body, headers=headers).status_code == 200


@pytest.mark.parametrize(("path", "content", "param"), [
    ("/v1/chat/completions", b"{not json", None),
    ("/v1/chat/completions", b'{"messages": []}', "model"),
    ("/v1/chat/completions", b'{"model": "m"}', "messages"),
    ("/v1/messages", b"{not json", None),
    ("/v1/messages", b'{"model": "c", "messages": [{"role": "user", "content": "x"}]}', "max_tokens"),
    ("/v1/messages", b'{"model": "c", "max_tokens": 5}', "messages"),
])
def test_invalid_requests_are_400_in_family_format(sim: str, path: str, content: bytes, param: str | None) -> None:
    r = httpx2.post(f"{sim}{path}", content=content, headers={"x-api-key": "k", "content-type": "application/json"})
    assert r.status_code == 400
    if path == "/v1/chat/completions":
        error = r.json()["error"]
        assert (error["type"], error["param"]) == ("invalid_request_error", param)
    else:
        assert r.json()["error"]["type"] == "invalid_request_error"
        if param:
            assert param in r.json()["error"]["message"]


def test_unknown_path_is_404(sim_oai: openai.OpenAI, sim: str) -> None:
    with pytest.raises(openai.NotFoundError):
        sim_oai.batches.list()
    r = httpx2.get(f"{sim}/v1/messages/batches", headers={"x-api-key": "k"})
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"


# ---- Faults -------------------------------------------------------------------------------------


def test_status_fault_429_carries_retry_after(control: httpx2.Client, sim_oai: openai.OpenAI) -> None:
    add_faults(control, {"status": 429, "retry_after": 2, "message": "slow down"})
    with pytest.raises(openai.RateLimitError) as err:
        sim_oai.chat.completions.create(model="m", messages=USER)
    assert err.value.response.headers["retry-after"] == "2"
    assert err.value.body["message"] == "slow down"
    # One fault, one request: the next one succeeds.
    assert sim_oai.chat.completions.create(model="m", messages=USER).choices[0].finish_reason == "stop"


@pytest.mark.parametrize("status", [500, 503])
def test_status_fault_5xx_is_internal_server_error(control: httpx2.Client, sim_oai: openai.OpenAI, status: int) -> None:
    add_faults(control, {"status": status})
    with pytest.raises(openai.InternalServerError) as err:
        sim_oai.chat.completions.create(model="m", messages=USER)
    assert err.value.status_code == status
    assert err.value.body["type"] == "server_error"


def test_anthropic_status_faults_use_anthropic_types(control: httpx2.Client, sim_ant: anthropic.Anthropic) -> None:
    add_faults(control, {"status": 529}, {"status": 429, "retry_after": 1})
    with pytest.raises(anthropic.InternalServerError) as overloaded:
        sim_ant.messages.create(model="c", max_tokens=5, messages=USER)
    assert overloaded.value.status_code == 529
    assert overloaded.value.body["error"]["type"] == "overloaded_error"
    with pytest.raises(anthropic.RateLimitError) as limited:
        sim_ant.messages.create(model="c", max_tokens=5, messages=USER)
    assert limited.value.body["error"]["type"] == "rate_limit_error"
    assert limited.value.response.headers["retry-after"] == "1"


def test_faults_for_one_family_wait_for_that_family(
        control: httpx2.Client, sim_oai: openai.OpenAI, sim_ant: anthropic.Anthropic) -> None:
    add_faults(control, {"family": "anthropic", "status": 500}, {"status": 401})
    with pytest.raises(openai.AuthenticationError):  # skips the anthropic fault, takes the next
        sim_oai.chat.completions.create(model="m", messages=USER)
    assert sim_oai.chat.completions.create(model="m", messages=USER).choices[0].finish_reason == "stop"
    with pytest.raises(anthropic.InternalServerError):
        sim_ant.messages.create(model="c", max_tokens=5, messages=USER)
    assert control.get("/_sim/faults").json() == {"faults": []}


def test_delay_fault_slows_one_answer(control: httpx2.Client, sim_oai: openai.OpenAI) -> None:
    add_faults(control, {"delay": 0.3})
    start = time.monotonic()
    assert sim_oai.chat.completions.create(model="m", messages=USER).choices[0].message.content == OPENAI_TEXT
    assert time.monotonic() - start >= 0.3
    start = time.monotonic()
    sim_oai.chat.completions.create(model="m", messages=USER)
    assert time.monotonic() - start < 0.3


def test_reset_mid_stream_after_some_tokens(
        control: httpx2.Client, sim_oai: openai.OpenAI, sim_ant: anthropic.Anthropic) -> None:
    add_faults(control, {"reset_after_tokens": 2, "family": "openai"}, {"reset_after_tokens": 2, "family": "anthropic"})

    received: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in sim_oai.chat.completions.create(model="m", messages=USER, stream=True):
            received.append(chunk.choices[0].delta.content)
    assert received == ["", "Simulated", " reply"]

    texts: list[str] = []
    # anthropic 2.14 lets the transport error through while iterating a stream.
    with pytest.raises((anthropic.APIConnectionError, httpx2.TransportError)):
        for event in sim_ant.messages.create(model="c", max_tokens=50, messages=USER, stream=True):
            if event.type == "content_block_delta":
                texts.append(event.delta.text)
    assert texts == ["Simulated", " reply"]


def test_reset_on_non_stream_request(control: httpx2.Client, sim_oai: openai.OpenAI, sim_ant: anthropic.Anthropic) -> None:
    add_faults(control, {"reset_after_tokens": 0}, {"reset_after_tokens": 3})
    with pytest.raises(openai.APIConnectionError):
        sim_oai.chat.completions.create(model="m", messages=USER)
    with pytest.raises(anthropic.APIConnectionError):
        sim_ant.messages.create(model="c", max_tokens=5, messages=USER)


def test_error_event_mid_stream(control: httpx2.Client, sim_oai: openai.OpenAI, sim_ant: anthropic.Anthropic) -> None:
    add_faults(control, {"error_event_after_tokens": 1, "family": "openai", "message": "boom"},
               {"error_event_after_tokens": 2, "family": "anthropic"})

    received: list[str] = []
    with pytest.raises(openai.APIError) as oerr:
        for chunk in sim_oai.chat.completions.create(model="m", messages=USER, stream=True):
            received.append(chunk.choices[0].delta.content)
    assert received == ["", "Simulated"]
    assert oerr.value.message == "boom"

    types: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as aerr:
        for event in sim_ant.messages.create(model="c", max_tokens=50, messages=USER, stream=True):
            types.append(event.type)
    assert types == ["message_start", "content_block_start", "content_block_delta", "content_block_delta"]
    assert aerr.value.body == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}


def test_garbled_data_mid_stream_and_as_a_whole_answer(
    control: httpx2.Client, sim_oai: openai.OpenAI, sim_ant: anthropic.Anthropic
) -> None:
    add_faults(control, {"garbled_after_tokens": 1, "family": "openai"},
               {"garbled_after_tokens": 1, "family": "anthropic"})

    received: list[str] = []
    with pytest.raises(json.JSONDecodeError):
        for chunk in sim_oai.chat.completions.create(model="m", messages=USER, stream=True):
            received.append(chunk.choices[0].delta.content)
    assert received == ["", "Simulated"]
    types: list[str] = []
    with pytest.raises(json.JSONDecodeError):
        for event in sim_ant.messages.create(model="c", max_tokens=50, messages=USER, stream=True):
            types.append(event.type)
    assert types == ["message_start", "content_block_start", "content_block_delta"]

    add_faults(control, {"garbled_after_tokens": 0})
    raw = sim_oai.chat.completions.with_raw_response.create(model="m", messages=USER)
    assert raw.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw.http_response.content)
    assert control.post("/_sim/faults", json={"faults": [{"garbled_after_tokens": 1, "status": 500}]}).status_code == 400


def test_bad_faults_are_rejected_whole(control: httpx2.Client) -> None:
    r = control.post("/_sim/faults", json={"faults": [{"status": 500}, {"statsu": 500}]})
    assert r.status_code == 400 and "statsu" in r.json()["error"]
    assert control.post("/_sim/faults", json={"faults": [{"family": "cohere", "status": 500}]}).status_code == 400
    assert control.get("/_sim/faults").json() == {"faults": []}


# ---- Timing -------------------------------------------------------------------------------------


def test_stream_tokens_arrive_incrementally(control: httpx2.Client, sim_oai: openai.OpenAI) -> None:
    control.post("/_sim/settings", json={"ttft": 0.1, "token_rate": 40}).raise_for_status()
    start = time.monotonic()
    arrivals = []
    for chunk in sim_oai.chat.completions.create(model="m", messages=USER, stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic() - start)
    assert len(arrivals) == 7
    assert arrivals[0] >= 0.08  # ttft is honoured
    assert arrivals[-1] - arrivals[0] >= 0.1  # 6 gaps at 40 tokens/s = 0.15 s: spread out, not one burst


def test_anthropic_stream_is_paced_too(control: httpx2.Client, sim_ant: anthropic.Anthropic) -> None:
    control.post("/_sim/settings", json={"token_rate": 25}).raise_for_status()
    arrivals = []
    for event in sim_ant.messages.create(model="c", max_tokens=50, messages=USER, stream=True):
        if event.type == "content_block_delta":
            arrivals.append(time.monotonic())
    assert arrivals[-1] - arrivals[0] >= 0.15  # 6 gaps at 25 tokens/s = 0.24 s


def test_non_stream_waits_latency_ttft_and_generation(control: httpx2.Client, sim_oai: openai.OpenAI) -> None:
    control.post("/_sim/settings", json={"latency": 0.1, "ttft": 0.1, "token_rate": 70}).raise_for_status()
    start = time.monotonic()
    sim_oai.chat.completions.create(model="m", messages=USER)
    assert time.monotonic() - start >= 0.28  # 0.1 + 0.1 + 7 / 70


# ---- Control API --------------------------------------------------------------------------------


def test_requests_record_exactly_what_the_sdks_sent(
        control: httpx2.Client, sim_oai: openai.OpenAI, sim_ant: anthropic.Anthropic) -> None:
    sim_oai.chat.completions.create(model="m", messages=USER, temperature=0.3, max_tokens=9)
    sim_ant.messages.create(model="c", max_tokens=11, messages=USER, extra_body={"temperature": 0.5})

    first, second = control.get("/_sim/requests").json()["requests"]
    assert (first["method"], first["path"]) == ("POST", "/v1/chat/completions")
    assert first["body"] == {"model": "m", "messages": USER, "temperature": 0.3, "max_tokens": 9}
    assert first["headers"]["authorization"] == "Bearer k"
    assert second["path"] == "/v1/messages"
    assert second["body"] == {"model": "c", "max_tokens": 11, "messages": USER, "temperature": 0.5}
    assert "anthropic-version" in second["headers"]

    assert control.delete("/_sim/requests").status_code == 200
    assert control.get("/_sim/requests").json() == {"requests": []}


def test_malformed_bodies_are_recorded_as_null(control: httpx2.Client, sim: str) -> None:
    httpx2.post(f"{sim}/v1/chat/completions", content=b"{oops", headers={"x-api-key": "k"})
    assert control.get("/_sim/requests").json()["requests"][0]["body"] is None


def test_settings_update_and_reset(control: httpx2.Client, sim_oai: openai.OpenAI) -> None:
    updated = control.post("/_sim/settings", json={"latency": 0.05}).json()
    assert (updated["latency"], updated["ttft"], updated["token_rate"]) == (0.05, 0.0, 0.0)
    assert control.get("/_sim/settings").json()["latency"] == 0.05
    assert control.post("/_sim/settings", json={"latency": -1}).status_code == 400
    assert control.post("/_sim/settings", json={"speed": 1}).status_code == 400

    sim_oai.models.list()
    add_faults(control, {"status": 500})
    reset = control.post("/_sim/reset").json()
    assert reset["settings"]["latency"] == 0.0
    assert control.get("/_sim/requests").json() == {"requests": []}
    assert control.get("/_sim/faults").json() == {"faults": []}


def test_reset_restores_the_starting_settings() -> None:
    server = build_server("127.0.0.1", 0, SimulatorSettings(token_rate=1000))
    try:
        server.state.update_settings({"token_rate": 5})
        assert server.state.reset().token_rate == 1000
    finally:
        server.server_close()


# ---- serve() ------------------------------------------------------------------------------------


def test_serve_with_gevent_answers_and_stops_on_sigterm() -> None:
    code = ("from ai_router.simulator import serve, SimulatorSettings; "
            "serve('127.0.0.1', 0, SimulatorSettings(token_rate=200))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("simulator listening on http://127.0.0.1:")
        client = openai.OpenAI(base_url=line.rsplit(" ", 1)[1] + "/v1", api_key="k", max_retries=0)
        with client:
            streams = [client.chat.completions.create(model="m", messages=USER, stream=True) for _ in range(3)]
            texts = ["".join(c.choices[0].delta.content or "" for c in s) for s in streams]
        assert texts == [OPENAI_TEXT] * 3
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ---- Tools and images ---------------------------------------------------------------------------

OAI_TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                      "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}},
    {"type": "function", "function": {"name": "lookup"}},
]
ANT_TOOLS = [
    {"name": "get_weather", "description": "Weather for a city",
     "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}}},
    {"name": "lookup", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}},
]
# json.dumps({"query": "hello there world"}): 30 characters, 4 words, streamed in 4 pieces of <= 8.
ARGS = '{"query": "hello there world"}'
ARG_PIECES = ['{"query"', ': "hello', " there w", 'orld"}']
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="


def oai_tool_turns(*results: tuple[str, str]) -> list[dict[str, Any]]:
    """A user turn, an assistant turn calling get_weather once per result, then the tool answers."""
    calls = [{"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
             for call_id, _ in results]
    return [*USER, {"role": "assistant", "content": None, "tool_calls": calls},
            *({"role": "tool", "tool_call_id": call_id, "content": text} for call_id, text in results)]


def ant_tool_turns(*results: tuple[str, object]) -> list[dict[str, Any]]:
    uses = [{"type": "tool_use", "id": use_id, "name": "get_weather", "input": {"city": "Oslo"}}
            for use_id, _ in results]
    answers = [{"type": "tool_result", "tool_use_id": use_id, "content": content} for use_id, content in results]
    return [*USER, {"role": "assistant", "content": uses}, {"role": "user", "content": answers}]


def test_openai_tool_call_non_stream(sim_oai: openai.OpenAI) -> None:
    # Neither the token limit nor a stop sequence cuts a tool call.
    completion = sim_oai.chat.completions.create(model="m", messages=USER, tools=OAI_TOOLS, max_tokens=1, stop="query")
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.id.startswith("call_sim_") and call.type == "function"
    assert (call.function.name, call.function.arguments) == ("get_weather", ARGS)
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (3, 4)


def test_openai_tool_call_stream(sim_oai: openai.OpenAI, sim: str) -> None:
    chunks = list(sim_oai.chat.completions.create(model="m", messages=USER, tools=OAI_TOOLS, tool_choice="required",
                                              stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    header = chunks[1].choices[0].delta.tool_calls[0]
    assert (header.index, header.type, header.function.name, header.function.arguments) == (
        0, "function", "get_weather", "")
    assert header.id.startswith("call_sim_")
    pieces = [c.choices[0].delta.tool_calls[0].function.arguments for c in chunks[2:-2]]
    assert pieces == ARG_PIECES and "".join(pieces) == ARGS
    assert all(c.choices[0].delta.tool_calls[0].id is None for c in chunks[2:-2])
    assert chunks[-2].choices[0].finish_reason == "tool_calls"
    assert chunks[-1].usage.completion_tokens == 4

    # On the wire, the role chunk before a tool call has `content: null`.
    body = {"model": "m", "messages": USER, "tools": OAI_TOOLS, "stream": True}
    text = httpx2.post(f"{sim}/v1/chat/completions", json=body, headers={"x-api-key": "k"}).text
    assert '"delta":{"role":"assistant","content":null}' in text.splitlines()[0]
    assert text.endswith('"finish_reason":"tool_calls","logprobs":null}]}\n\ndata: [DONE]\n\n')


def test_openai_tool_choice_names_a_tool_or_none(sim_oai: openai.OpenAI) -> None:
    named = sim_oai.chat.completions.create(model="m", messages=USER, tools=OAI_TOOLS,
                                        tool_choice={"type": "function", "function": {"name": "lookup"}})
    assert named.choices[0].message.tool_calls[0].function.name == "lookup"
    none = sim_oai.chat.completions.create(model="m", messages=USER, tools=OAI_TOOLS, tool_choice="none")
    assert (none.choices[0].message.content, none.choices[0].finish_reason) == (OPENAI_TEXT, "stop")
    assert none.choices[0].message.tool_calls is None


def test_openai_tool_results_are_answered(sim_oai: openai.OpenAI) -> None:
    messages = oai_tool_turns(("call_1", "sunny"), ("call_2", "20 C"))
    completion = sim_oai.chat.completions.create(model="m", messages=messages, tools=OAI_TOOLS)
    assert completion.choices[0].message.content == "Simulated reply from m: tool said: sunny; 20 C"
    assert completion.choices[0].finish_reason == "stop"
    # 3 user words + 2 x 2 argument words + 1 + 2 result words.
    assert completion.usage.prompt_tokens == 10

    chunks = list(sim_oai.chat.completions.create(model="m", messages=messages, max_tokens=5, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Simulated reply from m: tool"
    assert chunks[-1].choices[0].finish_reason == "length"


@pytest.mark.parametrize("url", ["https://example.com/cat.png", f"data:image/png;base64,{PNG}"])
def test_openai_image_is_counted(sim_oai: openai.OpenAI, url: str) -> None:
    content = [{"type": "text", "text": "What is this?"},
               {"type": "image_url", "image_url": {"url": url, "detail": "low"}},
               {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}]
    completion = sim_oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": content}])
    assert completion.choices[0].message.content == "Simulated reply from gpt-4o: What is this? [images: 1]"
    assert completion.usage.prompt_tokens == 4  # 3 words + 1 image


def test_openai_tool_call_stream_faults_count_argument_pieces(control: httpx2.Client, sim_oai: openai.OpenAI) -> None:
    add_faults(control, {"reset_after_tokens": 2}, {"error_event_after_tokens": 3})
    pieces: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in sim_oai.chat.completions.create(model="m", messages=USER, tools=OAI_TOOLS, stream=True):
            pieces.extend(t.function.arguments for t in chunk.choices[0].delta.tool_calls or [])
    assert pieces == ["", *ARG_PIECES[:2]]

    pieces.clear()
    with pytest.raises(openai.APIError):
        for chunk in sim_oai.chat.completions.create(model="m", messages=USER, tools=OAI_TOOLS, stream=True):
            pieces.extend(t.function.arguments for t in chunk.choices[0].delta.tool_calls or [])
    assert pieces == ["", *ARG_PIECES[:3]]


def test_tool_call_stream_is_paced_per_argument_piece(control: httpx2.Client, sim_oai: openai.OpenAI) -> None:
    control.post("/_sim/settings", json={"token_rate": 40}).raise_for_status()
    arrivals = []
    for chunk in sim_oai.chat.completions.create(model="m", messages=USER, tools=OAI_TOOLS, stream=True):
        if chunk.choices and chunk.choices[0].delta.tool_calls:
            arrivals.append(time.monotonic())
    assert len(arrivals) == 5  # the header, then 4 pieces
    assert arrivals[-1] - arrivals[1] >= 0.06  # 3 gaps at 40 pieces/s = 0.075 s


OAI_CALLS = oai_tool_turns(("call_1", "sunny"))


@pytest.mark.parametrize(("changes", "param"), [
    ({"messages": [*OAI_CALLS[:2], {"role": "tool", "tool_call_id": "call_9", "content": "x"}]},
     "messages[2].tool_call_id"),
    ({"messages": [*USER, {"role": "tool", "tool_call_id": "call_1", "content": "x"}]}, "messages[1].role"),
    ({"messages": [*OAI_CALLS, {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "image_url"}]}]},
     "messages[3].content[0].type"),
    ({"messages": [*OAI_CALLS, *USER, {"role": "tool", "tool_call_id": "call_1", "content": "x"}]}, "messages[4].role"),
    ({"messages": [*OAI_CALLS[:2], *USER]}, "messages[2]"),  # the call is never answered
    ({"messages": [*OAI_CALLS[:2], {"role": "tool", "content": "x"}]}, "messages[2].tool_call_id"),
    ({"messages": [OAI_CALLS[0], {**OAI_CALLS[1], "tool_calls": [{
        "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{city: Oslo}"}}]},
        OAI_CALLS[2]]}, "messages[1].tool_calls[0].function.arguments"),
    ({"messages": [*USER, {"role": "assistant", "content": None}, *USER]}, "messages[1].content"),
    ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]}]},
     "messages[0].content[0].image_url.url"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,abc"}}]}]},
     "messages[0].content[0].image_url.url"),
    ({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@"}}]}]},
     "messages[0].content[0].image_url.url"),
    ({"messages": [{"role": "user", "content": [{"type": "video", "video": {}}]}]}, "messages[0].content[0].type"),
    ({"tools": [{"type": "function", "function": {"description": "no name"}}]}, "tools[0].function.name"),
    ({"tools": [{"type": "retrieval"}]}, "tools[0].type"),
    ({"tools": OAI_TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}},
     "tool_choice.function.name"),
    ({"tools": OAI_TOOLS, "tool_choice": "always"}, "tool_choice"),
    ({"tool_choice": "auto"}, "tool_choice"),
])
def test_openai_invalid_tool_and_image_requests(sim_oai: openai.OpenAI, changes: dict[str, Any], param: str) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        sim_oai.chat.completions.create(**{"model": "m", "messages": USER, **changes})
    assert err.value.body["param"] == param
    assert err.value.body["type"] == "invalid_request_error"


def test_anthropic_tool_use_non_stream(sim_ant: anthropic.Anthropic) -> None:
    message = sim_ant.messages.create(model="c", max_tokens=1, messages=USER, tools=ANT_TOOLS, stop_sequences=["query"])
    [block] = message.content
    assert block.type == "tool_use" and block.id.startswith("toolu_sim_")
    assert (block.name, block.input) == ("get_weather", {"query": "hello there world"})
    assert (message.stop_reason, message.stop_sequence) == ("tool_use", None)
    assert (message.usage.input_tokens, message.usage.output_tokens) == (3, 4)


def test_anthropic_tool_use_stream(sim_ant: anthropic.Anthropic, sim: str) -> None:
    with sim_ant.messages.stream(model="c", max_tokens=100, messages=USER, tools=ANT_TOOLS,
                             tool_choice={"type": "any", "disable_parallel_tool_use": True}) as stream:
        final = stream.get_final_message()
    assert final.content[0].type == "tool_use"
    assert (final.content[0].name, final.content[0].input) == ("get_weather", {"query": "hello there world"})
    assert (final.stop_reason, final.usage.output_tokens) == ("tool_use", 4)

    body = {"model": "c", "max_tokens": 100, "messages": USER, "tools": ANT_TOOLS, "stream": True}
    text = httpx2.post(f"{sim}/v1/messages", json=body, headers={"x-api-key": "k"}).text
    names = [line[len("event: "):] for line in text.splitlines() if line.startswith("event: ")]
    assert names == ["message_start", "content_block_start", "ping", *["content_block_delta"] * 4,
                     "content_block_stop", "message_delta", "message_stop"]
    assert '"content_block":{"type":"tool_use","id":"toolu_sim_' in text and '"input":{}}' in text
    events = list(sim_ant.messages.create(model="c", max_tokens=100, messages=USER, tools=ANT_TOOLS, stream=True))
    deltas = [e.delta for e in events if e.type == "content_block_delta"]
    assert all(d.type == "input_json_delta" for d in deltas)
    assert [d.partial_json for d in deltas] == ARG_PIECES


def test_anthropic_tool_choice_names_a_tool_or_none(sim_ant: anthropic.Anthropic) -> None:
    named = sim_ant.messages.create(model="c", max_tokens=50, messages=USER, tools=ANT_TOOLS,
                                tool_choice={"type": "tool", "name": "lookup"})
    assert named.content[0].name == "lookup"
    none = sim_ant.messages.create(model="c", max_tokens=50, messages=USER, tools=ANT_TOOLS, tool_choice={"type": "none"})
    assert (none.content[0].text, none.stop_reason) == ("Simulated reply from c: hello there world", "end_turn")


def test_anthropic_tool_results_are_answered(sim_ant: anthropic.Anthropic) -> None:
    messages = ant_tool_turns(("toolu_1", "sunny"), ("toolu_2", [{"type": "text", "text": "20 C"}]))
    message = sim_ant.messages.create(model="c", max_tokens=50, messages=messages, tools=ANT_TOOLS, system="be brief")
    assert message.content[0].text == "Simulated reply from c: tool said: sunny; 20 C"
    assert message.stop_reason == "end_turn"
    # 2 system + 3 user words + 2 x 2 words of json.dumps(input) + 1 + 2 result words.
    assert message.usage.input_tokens == 12


@pytest.mark.parametrize("source", [{"type": "base64", "media_type": "image/png", "data": PNG},
                                    {"type": "url", "url": "https://example.com/cat.png"}])
def test_anthropic_image_is_counted(sim_ant: anthropic.Anthropic, source: dict[str, Any]) -> None:
    content = [{"type": "image", "source": source, "cache_control": {"type": "ephemeral"}},
               {"type": "text", "text": "What is this?"}]
    with sim_ant.messages.stream(model="c", max_tokens=50, messages=[{"role": "user", "content": content}]) as stream:
        final = stream.get_final_message()
    assert final.content[0].text == "Simulated reply from c: What is this? [images: 1]"
    assert final.usage.input_tokens == 4


ANT_CALLS = ant_tool_turns(("toolu_1", "sunny"))


@pytest.mark.parametrize(("changes", "fragment"), [
    ({"messages": [{"role": "system", "content": "be brief"}, *USER]}, "top-level system parameter"),
    ({"messages": [*ANT_CALLS[:2], {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_9", "content": "x"}]}]}, "toolu_9"),
    ({"messages": [*USER, {"role": "assistant", "content": "hi"}, {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "x"}]}]}, "does not have any `tool_use`"),
    ({"messages": [*ANT_CALLS[:2], *USER]}, "without `tool_result`"),
    ({"messages": [{"role": "user", "content": [
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}]}]}, "messages.0.content.0.type"),
    ({"messages": [*USER, {"role": "assistant", "content": [
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": "{}"}]}]}, "messages.1.content.0.input"),
    ({"messages": [*ANT_CALLS[:2], {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "tool_use"}]}]}]},
     "messages.2.content.0.content.0.type"),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {
        "type": "base64", "media_type": "image/bmp", "data": PNG}}]}]}, "media_type"),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {
        "type": "url", "url": "file:///etc/passwd"}}]}]}, "source.url"),
    ({"system": [{"type": "image", "source": {}}]}, "system.0.type"),
    ({"tools": [{"name": "get_weather"}]}, "tools.0.input_schema"),
    ({"tools": [*ANT_TOOLS, ANT_TOOLS[0]]}, "unique"),
    ({"tools": ANT_TOOLS, "tool_choice": {"type": "tool", "name": "nope"}}, "tool_choice.name"),
    ({"tools": ANT_TOOLS, "tool_choice": {"type": "required"}}, "tool_choice.type"),
])
def test_anthropic_invalid_tool_and_image_requests(sim_ant: anthropic.Anthropic, changes: dict[str, Any], fragment: str) -> None:
    with pytest.raises(anthropic.BadRequestError) as err:
        sim_ant.messages.create(**{"model": "c", "max_tokens": 50, "messages": USER, **changes})
    assert err.value.body["error"]["type"] == "invalid_request_error"
    assert fragment in err.value.body["error"]["message"]
