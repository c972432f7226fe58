"""POST /v1/embeddings and POST /v1/messages/count_tokens, and what any other path under /v1
answers: through real routers (gunicorn + gevent) on the simulator, with the official SDKs.

Embeddings reach OpenAI-family providers and token counting Anthropic-family ones, relayed with
only the model changed; another family's model is a 400 before any upstream is tried. Both go
through the one metered core call: router keys, model patterns, limits and costs apply, except
that a token count is free and takes nothing from a key's limits.

The simulator's tokens are words: "one two three" is 3 input tokens, for embeddings and counts.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from access_support import (
    COST_HEADER,
    AccessConfig,
    bearer,
    json_lines,
    new_key,
    sha256_hex,
    spent,
)
from support import (
    OPENAI_TEST_KEY,
    Process,
    Simulator,
    free_port,
    start_process,
    wait_for_port,
    wait_for_worker,
    wait_until,
)

EMBEDDING_MODEL = "openai/text-embedding-3-small"
EMBEDDING_PRICE = 0.02  # USD per million input tokens, the built-in table's
ANTHROPIC_MODEL = "anthropic/claude-3-5-haiku-20241022"
OPENAI_CHAT_MODEL = "openai/gpt-4o-mini"
THREE_WORDS = "one two three"
USER = [{"role": "user", "content": THREE_WORDS}]
INVALID_INPUT = "'$.input' is invalid. Please check the API reference"


# --- embeddings ------------------------------------------------------------------------------------


def test_embeddings_are_relayed_with_only_the_model_changed(
    oai: openai.OpenAI, simulator: Simulator
) -> None:
    answer = oai.embeddings.create(model=EMBEDDING_MODEL, input=THREE_WORDS, encoding_format="float")

    assert answer.model == EMBEDDING_MODEL  # named as the client can send it back
    assert len(answer.data[0].embedding) == 1536
    assert answer.usage.prompt_tokens == 3
    sent = simulator.last_request()
    assert (sent["method"], sent["path"]) == ("POST", "/v1/embeddings")
    assert sent["body"] == {
        "model": "text-embedding-3-small",
        "input": THREE_WORDS,
        "encoding_format": "float",
    }
    assert sent["headers"]["authorization"] == f"Bearer {OPENAI_TEST_KEY}"
    assert "client-key" not in str(sent["headers"])


def test_the_sdks_default_base64_passes_through_and_decodes_to_the_same_vector(
    oai: openai.OpenAI, simulator: Simulator
) -> None:
    floats = oai.embeddings.create(model=EMBEDDING_MODEL, input=["a", "b"], encoding_format="float")
    default = oai.embeddings.create(model=EMBEDDING_MODEL, input=["a", "b"])

    assert simulator.last_request()["body"]["encoding_format"] == "base64"
    assert [item.embedding for item in default.data] == [item.embedding for item in floats.data]


def test_an_embedding_costs_its_input_tokens_at_the_models_price(
    client: httpx2.Client, simulator: Simulator
) -> None:
    answer = client.post("/v1/embeddings", json={"model": EMBEDDING_MODEL, "input": THREE_WORDS,
                                                 "encoding_format": "base64"})

    assert answer.status_code == 200
    assert isinstance(answer.json()["data"][0]["embedding"], str)  # passed through as it came
    assert float(answer.headers[COST_HEADER]) == pytest.approx(3 * EMBEDDING_PRICE / 1e6)


def test_embeddings_for_a_model_of_another_family_are_a_400_naming_who_offers_them(
    oai: openai.OpenAI, simulator: Simulator
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        oai.embeddings.create(model=ANTHROPIC_MODEL, input="hi")

    assert caught.value.body == {
        "message": "POST /v1/embeddings is not offered by provider 'anthropic': its API has no "
        "such endpoint. The providers that offer it: openai, spare",
        "type": "invalid_request_error",
        "param": "model",
        "code": None,
    }
    assert simulator.requests() == []


def test_the_upstreams_refusal_reaches_the_client_in_its_format(
    oai: openai.OpenAI, simulator: Simulator
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        oai.embeddings.create(model=EMBEDDING_MODEL, input="")

    assert INVALID_INPUT in caught.value.message


def test_an_embeddings_body_without_a_model_is_refused_before_any_upstream(
    client: httpx2.Client, simulator: Simulator
) -> None:
    answer = client.post("/v1/embeddings", json={"input": "hi"})

    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "model"
    assert simulator.requests() == []


# --- token counting --------------------------------------------------------------------------------


def test_a_token_count_is_relayed_to_anthropic(
    ant: anthropic.Anthropic, simulator: Simulator
) -> None:
    counted = ant.messages.count_tokens(model=ANTHROPIC_MODEL, messages=[
        {"role": "user", "content": THREE_WORDS}])

    assert counted.input_tokens == 3
    sent = simulator.last_request()
    assert (sent["method"], sent["path"]) == ("POST", "/v1/messages/count_tokens")
    assert sent["body"] == {"model": "claude-3-5-haiku-20241022", "messages": USER}


def test_a_token_count_costs_nothing(client: httpx2.Client, simulator: Simulator) -> None:
    answer = client.post("/v1/messages/count_tokens", json={"model": ANTHROPIC_MODEL, "messages": USER})

    assert answer.json() == {"input_tokens": 3}
    assert answer.headers[COST_HEADER] == "0"


def test_a_token_count_for_an_openai_model_is_a_400_not_a_made_up_number(
    ant: anthropic.Anthropic, simulator: Simulator
) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        ant.messages.count_tokens(model=OPENAI_CHAT_MODEL, messages=[
            {"role": "user", "content": "hi"}])

    assert caught.value.body == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "POST /v1/messages/count_tokens is not offered by provider 'openai': its "
            "API has no such endpoint. The providers that offer it: anthropic",
        },
    }
    assert simulator.requests() == []


def test_what_the_count_refuses_reaches_the_client_in_anthropics_format(
    ant: anthropic.Anthropic, simulator: Simulator
) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        ant.messages.count_tokens(model=ANTHROPIC_MODEL, messages=[
            {"role": "user", "content": "hi"}], extra_body={"max_tokens": 5})

    assert "max_tokens: Extra inputs are not permitted" in caught.value.message


# --- any other path under /v1 ---------------------------------------------------------------------

# What /v1 offers today; the list in the message is read off the app's routes, so it may grow.
OFFERED = {
    "POST /v1/chat/completions", "POST /v1/embeddings", "POST /v1/messages",
    "POST /v1/messages/count_tokens", "GET /v1/models", "GET /v1/models/{model_id}",
    "GET /v1/usage",
}  # fmt: skip


def assert_lists_what_is_offered(message: str, asked: str) -> None:
    lead = f"{asked} is not an endpoint of this router; under /v1 it offers: "
    assert message.startswith(lead), message
    assert OFFERED <= set(message.removeprefix(lead).split(", ")), message


def test_an_unknown_path_tells_an_openai_client_what_is_offered(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        oai.post("/no-such-thing", cast_to=httpx2.Response, body={"model": OPENAI_CHAT_MODEL})

    error = caught.value.body
    assert isinstance(error, dict)
    assert_lists_what_is_offered(error["message"], "POST /v1/no-such-thing")


def test_an_unknown_path_answers_in_openais_error_shape(client: httpx2.Client) -> None:
    answer = client.get("/v1/nothing/here")

    assert answer.status_code == 404
    error = answer.json()["error"]
    assert error == {"message": error["message"], "type": "invalid_request_error",
                     "param": None, "code": None}
    assert_lists_what_is_offered(error["message"], "GET /v1/nothing/here")


def test_an_unknown_path_tells_an_anthropic_client_in_its_own_format(
    ant: anthropic.Anthropic,
) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        ant.post("/v1/complete", cast_to=httpx2.Response, body={"model": ANTHROPIC_MODEL})

    body = caught.value.body
    assert isinstance(body, dict)
    assert body == {"type": "error", "error": {"type": "not_found_error",
                                               "message": body["error"]["message"]}}
    assert_lists_what_is_offered(body["error"]["message"], "POST /v1/complete")


def test_an_unknown_path_under_messages_answers_in_anthropics_format(client: httpx2.Client) -> None:
    answer = client.post("/v1/messages/batches", json={})

    assert answer.status_code == 404
    assert answer.json()["type"] == "error"
    assert_lists_what_is_offered(answer.json()["error"]["message"], "POST /v1/messages/batches")


def test_a_path_outside_v1_keeps_the_native_format(client: httpx2.Client) -> None:
    answer = client.get("/nowhere")

    assert answer.status_code == 404
    assert answer.json()["error"]["type"] == "not_found"


# --- keys, limits and spend ------------------------------------------------------------------------

ADMIN_ENV = "PASSTHROUGH_TEST_ADMIN_KEY"
ADMIN_KEY = new_key("admin")
KEYS = {name: new_key(name) for name in ("roomy", "chat-only", "two-a-minute", "spender")}
ROOMY = {"rpm": 100_000, "tpm": 100_000_000, "max_concurrent": 100}


def key_entry(name: str, **settings: Any) -> dict[str, Any]:
    return {"name": name, "key_sha256": sha256_hex(KEYS[name]), **settings}


class Keyed:
    def __init__(self, url: str, usage_log: Path) -> None:
        self.url = url
        self.usage_log = usage_log

    def openai(self, key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=KEYS[key], max_retries=0)

    def anthropic(self, key: str) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.url, api_key=KEYS[key], max_retries=0)

    def records(self, key: str) -> list[dict[str, Any]]:
        lines = json_lines(self.usage_log) if self.usage_log.exists() else []
        return [line for line in lines if line.get("key") == key]


@pytest.fixture(scope="module")
def keyed(simulator_process: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keyed]:
    """One `ai-router http` (one worker) with router keys and a usage log."""
    directory = tmp_path_factory.mktemp("passthrough")
    usage_log = directory / "usage.jsonl"
    config = AccessConfig(
        simulator_process,
        directory,
        {
            "auth": {"admin_key_env": ADMIN_ENV, "keys": [
                key_entry("roomy", **ROOMY),
                key_entry("chat-only", models=["openai/gpt-*", "anthropic/claude-3-haiku-*"],
                          **ROOMY),
                key_entry("two-a-minute", rpm=2, tpm=100_000_000, max_concurrent=100),
                key_entry("spender", budget_usd=1.0, budget_period="1d", **ROOMY),
            ]},
            "state": {"backend": "sqlite", "path": str(directory / "state.db")},
        },
        {"usage_log": str(usage_log)},
    )
    port = free_port()
    env = {**config.env(), ADMIN_ENV: ADMIN_KEY, "HTTP_PORT": str(port), "WEB_CONCURRENCY": "1"}
    process: Process = start_process("passthrough-http", ["http"], env, directory, port)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_port(process)
        # The port opens with gunicorn's master; the worker answers once it has booted.
        wait_for_worker(url)
        yield Keyed(url, usage_log)
    finally:
        process.stop()



def test_both_want_a_router_key(keyed: Keyed) -> None:
    embeddings = httpx2.post(f"{keyed.url}/v1/embeddings", timeout=10,
                             json={"model": EMBEDDING_MODEL, "input": "hi"})
    count = httpx2.post(f"{keyed.url}/v1/messages/count_tokens", timeout=10,
                        headers={"anthropic-version": "2023-06-01"},
                        json={"model": ANTHROPIC_MODEL, "messages": USER})

    assert embeddings.status_code == count.status_code == 401
    assert embeddings.json()["error"]["type"] == "authentication_error"
    assert count.json()["error"]["type"] == "authentication_error"


def test_both_follow_the_keys_model_patterns(keyed: Keyed, simulator: Simulator) -> None:
    with pytest.raises(openai.PermissionDeniedError):
        keyed.openai("chat-only").embeddings.create(model=EMBEDDING_MODEL, input="hi")
    with pytest.raises(anthropic.PermissionDeniedError):
        keyed.anthropic("chat-only").messages.count_tokens(model=ANTHROPIC_MODEL, messages=[
            {"role": "user", "content": "hi"}])

    assert simulator.requests() == []


def test_embeddings_count_against_rpm_and_token_counts_do_not(
    keyed: Keyed, simulator: Simulator
) -> None:
    client, counter = keyed.openai("two-a-minute"), keyed.anthropic("two-a-minute")
    for _ in range(2):
        client.embeddings.create(model=EMBEDDING_MODEL, input="hi")

    with pytest.raises(openai.RateLimitError):
        client.embeddings.create(model=EMBEDDING_MODEL, input="hi")
    # Free, and rate-limited by Anthropic apart from generation: the key's rpm is not its limit.
    counts = [
        counter.messages.count_tokens(model=ANTHROPIC_MODEL, messages=[
            {"role": "user", "content": "hi"}]).input_tokens
        for _ in range(3)
    ]
    assert counts == [1, 1, 1]


def test_embeddings_are_spent_from_the_budget_and_counts_are_not(
    keyed: Keyed, simulator: Simulator
) -> None:
    keyed.openai("spender").embeddings.create(model=EMBEDDING_MODEL, input=THREE_WORDS)
    keyed.anthropic("spender").messages.count_tokens(model=ANTHROPIC_MODEL, messages=[
        {"role": "user", "content": THREE_WORDS}])

    assert spent(keyed.url, "spender", ADMIN_KEY) == pytest.approx(3 * EMBEDDING_PRICE / 1e6)
    # A request's usage record is written with the worker's next batch (batches.py).
    wait_until(lambda: len(keyed.records("spender")) == 2, 5, "both usage records")
    records = {record["surface"]: record for record in keyed.records("spender")}
    assert records["embeddings"]["input_tokens"] == 3
    assert records["embeddings"]["output_tokens"] == 0
    assert records["embeddings"]["cost_usd"] == pytest.approx(3 * EMBEDDING_PRICE / 1e6)
    assert records["count_tokens"]["cost_usd"] == 0
    assert records["count_tokens"]["input_tokens"] is None  # nothing was processed
