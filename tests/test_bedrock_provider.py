"""The Bedrock provider: the Converse request it builds and signs (checked against botocore's own
signer and boto3's own request), the answers, streams and errors it reads (on an in-process
upstream), and the simulator's Bedrock wire, checked with boto3's bedrock-runtime client and
with the provider itself."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import botocore.config
import botocore.exceptions
import botocore.session
import pytest
from amazon_transcribe.eventstream import HEADERS_SERIALIZATION_DICT, EventStreamMessageSerializer
from pydantic import SecretStr

from ai_router.config import ConfigError, ProviderSettings, settings_from_mapping
from ai_router.errors import (
    InvalidRequest,
    ProviderNotConfigured,
    RouterError,
    UpstreamAuthFailed,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from ai_router.providers.bedrock_provider import BedrockProvider
from ai_router.providers.fake_transport import FakeAnswer, FakeRequest, FakeUpstream
from ai_router.simulator import bedrock_wire as sim_wire
from ai_router.types import (
    ChatChunk,
    ChatRequest,
    ImagePart,
    Message,
    OutputFormat,
    Sampling,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    Usage,
)
from ai_router.upstream_watch import Watchdog
from ai_router.wire import bedrock_converse as wire

MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"
PIXEL = base64.b64encode(b"\x89PNG\r\n\x1a\n fake").decode()
_frames = EventStreamMessageSerializer()


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The simulator's credentials and nothing else of AWS's: no profile, no shared files of
    this machine, and never the instance metadata service."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_BEARER_TOKEN_BEDROCK", "AWS_WEB_IDENTITY_TOKEN_FILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", sim_wire.ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", sim_wire.SECRET_ACCESS_KEY)


def settings(base_url: str = "http://bedrock.test:8443", key: str | None = None) -> ProviderSettings:
    return ProviderSettings(
        name="bedrock", type="bedrock", default_model=MODEL, region="us-east-1", base_url=base_url,
        api_key=SecretStr(key) if key else None, api_key_env="AWS_BEARER_TOKEN_BEDROCK", timeout=30,
    )  # fmt: skip


def bedrock(handler: Any, key: str | None = None) -> tuple[BedrockProvider, FakeUpstream]:
    upstream = FakeUpstream(handler)
    return BedrockProvider(settings(key=key), upstream.connect), upstream


def request(**fields: Any) -> ChatRequest:
    fields.setdefault("messages", (Message("user", "hi"),))
    fields.setdefault("model", MODEL)
    fields.setdefault("max_tokens", 64)
    return ChatRequest(provider="bedrock", request_id="rid-7", **fields)


def answer(content: list[dict[str, Any]], stop: str = "end_turn") -> FakeAnswer:
    return FakeAnswer.of_json({
        "output": {"message": {"role": "assistant", "content": content}}, "stopReason": stop,
        "usage": {"inputTokens": 3, "outputTokens": 2, "totalTokens": 5}, "metrics": {"latencyMs": 9},
    })  # fmt: skip


def event(kind: str, payload: dict[str, Any]) -> bytes:
    headers: HEADERS_SERIALIZATION_DICT = {":event-type": kind, ":content-type": "application/json", ":message-type": "event"}
    return _frames.serialize(headers, json.dumps(payload).encode())


def stream_of(*frames: bytes, piece: int = 7) -> FakeAnswer:
    """The frames as reads of `piece` bytes: frames split anywhere, as TCP splits them."""
    data = b"".join(frames)
    pieces = tuple(data[i:i + piece] for i in range(0, len(data), piece))
    return FakeAnswer(200, pieces, content_type=wire.EVENT_STREAM)


def error(kind: str, message: str) -> FakeAnswer:
    status = wire.ERROR_STATUSES.get(kind, 403)
    return FakeAnswer.of_json({"message": message}, status, **{"x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/"})


def failure(provider: BedrockProvider, chat: ChatRequest, stream: bool = False) -> RouterError:
    with pytest.raises(RouterError) as caught:
        if stream:
            list(provider.stream(chat, Watchdog().watch()))
        else:
            provider.complete(chat)
    return caught.value


def sent(upstream: FakeUpstream) -> dict[str, Any]:
    body: dict[str, Any] = upstream.requests[-1].json()
    return body


def boto3_request(model: str, body: dict[str, Any], stream: bool = False) -> Any:
    """The request boto3's own bedrock-runtime client sends for `body` (captured, not sent)."""
    client = boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url="http://bedrock.test:8443")
    captured: list[Any] = []

    def capture(request: Any, **_: Any) -> None:
        captured.append(request)
        raise botocore.exceptions.ConnectionClosedError(endpoint_url="captured")

    client.meta.events.register("before-send", capture)
    with pytest.raises(botocore.exceptions.ConnectionClosedError):
        (client.converse_stream if stream else client.converse)(modelId=model, **body)
    return captured[0]


def signature_problem(sent_request: FakeRequest) -> tuple[str, str] | None:
    """The simulator's check: botocore's SigV4Auth recomputed over what arrived."""
    parts = urlsplit(sent_request.url)
    headers = {name.lower(): value for name, value in sent_request.headers.items()}
    headers["host"] = parts.netloc
    return sim_wire.signature_problem("POST", parts.path, headers, sent_request.body)


# ---- config --------------------------------------------------------------------------------------


def test_the_region_comes_from_config_or_the_aws_variables_and_the_key_is_a_bedrock_api_key() -> None:
    raw = {"providers": {"bedrock": {"default_model": MODEL}}}
    with pytest.raises(ConfigError) as missing:
        settings_from_mapping(raw, {})
    assert "providers.bedrock.region" in str(missing.value) and "AWS_REGION or AWS_DEFAULT_REGION" in str(missing.value)
    found = settings_from_mapping(raw, {"AWS_DEFAULT_REGION": "eu-west-1", "AWS_BEARER_TOKEN_BEDROCK": "k"})
    bedrock_settings = found.providers["bedrock"]
    assert (bedrock_settings.region, bedrock_settings.api_key_env) == ("eu-west-1", "AWS_BEARER_TOKEN_BEDROCK")
    assert bedrock_settings.api_key is not None and bedrock_settings.api_key.get_secret_value() == "k"
    raw["providers"]["bedrock"]["region"] = "us-west-2"
    assert settings_from_mapping(raw, {"AWS_REGION": "eu-west-1"}).providers["bedrock"].region == "us-west-2"


def test_the_default_url_is_the_regions_endpoint() -> None:
    upstream = FakeUpstream(lambda r: answer([{"text": "ok"}]))
    provider = BedrockProvider(settings().model_copy(update={"base_url": None, "region": "eu-central-1"}), upstream.connect)
    provider.complete(request())
    assert upstream.requests[-1].url == (
        "https://bedrock-runtime.eu-central-1.amazonaws.com/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse"
    )
    assert "/eu-central-1/bedrock/aws4_request" in upstream.requests[-1].headers["Authorization"]


# ---- the request ---------------------------------------------------------------------------------


@pytest.mark.parametrize("model", [MODEL, "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.meta.llama3-3-70b-instruct-v1:0"])
@pytest.mark.parametrize("stream", [False, True])
def test_the_url_and_signature_are_boto3s(model: str, stream: bool) -> None:
    frames = stream_of(event("messageStop", {"stopReason": "end_turn"}), event("metadata", {"usage": {}}))
    provider, upstream = bedrock(lambda r: frames if stream else answer([{"text": "ok"}]))
    chat = request(model=model)
    if stream:
        list(provider.stream(chat, Watchdog().watch()))
    else:
        provider.complete(chat)
    got = upstream.requests[-1]
    theirs = boto3_request(model, sent(upstream), stream)
    assert got.url == theirs.url  # the model id percent-encoded as botocore encodes its label
    signed = got.headers["Authorization"]
    assert signed.startswith(f"AWS4-HMAC-SHA256 Credential={sim_wire.ACCESS_KEY_ID}/")
    assert "/us-east-1/bedrock/aws4_request" in signed and "SignedHeaders=content-type;host;x-amz-date" in signed
    # The headers boto3 signs, no more, no fewer.
    assert theirs.headers["Authorization"].decode().split("SignedHeaders=")[1].split(",")[0] == "content-type;host;x-amz-date"
    assert signature_problem(got) is None
    # A byte changed after signing is caught by the same check.
    tampered = FakeRequest(got.url, got.headers, got.body.replace(b"hi", b"ho"), got.timeout, got.stream)
    problem = signature_problem(tampered)
    assert problem is not None and problem[0] == "InvalidSignatureException"
    assert got.headers["x-request-id"] == "rid-7" and got.headers["content-type"] == "application/json"


def test_a_session_token_is_signed_and_a_bearer_token_replaces_the_signature(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token-xyz")
    provider, upstream = bedrock(lambda r: answer([{"text": "ok"}]))
    provider.complete(request())
    headers = upstream.requests[-1].headers
    assert headers["X-Amz-Security-Token"] == "session-token-xyz"
    assert "x-amz-security-token" in headers["Authorization"]
    assert signature_problem(upstream.requests[-1]) is None

    provider, upstream = bedrock(lambda r: answer([{"text": "ok"}]), key="bedrock-api-key-123")
    provider.complete(request())
    headers = upstream.requests[-1].headers
    assert headers["authorization"] == "Bearer bedrock-api-key-123" and "X-Amz-Date" not in headers


def test_a_conversation_becomes_converse_messages() -> None:
    provider, upstream = bedrock(lambda r: answer([{"text": "ok"}]))
    call = ToolCall("tooluse_1", "lookup", '{"q": "x"}')
    other = ToolCall("gemini_0123456789abcdef_" + "s" * 80, "lookup", "")  # too long for a toolUseId
    digest = wire.tool_use_id(other.id)
    assert digest.startswith("call_") and len(digest) <= 64 and wire.tool_use_id(digest) == digest
    provider.complete(request(
        system="Be brief.",
        messages=(
            Message("user", (TextPart("look at"), ImagePart(media_type="image/png", data=PIXEL))),
            Message("assistant", "", tool_calls=(call, other)),
            Message("tool", "found", tool_call_id="tooluse_1"),
            Message("tool", "failed", tool_call_id=other.id, is_error=True),
            Message("user", "and now?"),
        ),
        tools=(Tool("lookup", "Looks up.", {"type": "object", "properties": {"q": {"type": "string"}}}, strict=True),
               Tool("noop")),
        tool_choice=ToolChoice("tool", "lookup"),
        sampling=Sampling(temperature=1.5, top_p=0.9, top_k=40, stop=("END",)),
        output_format=OutputFormat({"type": "object"}, name="answer"),
    ))
    assert sent(upstream) == {
        "messages": [
            {"role": "user", "content": [{"text": "look at"}, {"image": {"format": "png", "source": {"bytes": PIXEL}}}]},
            {"role": "assistant", "content": [
                {"toolUse": {"toolUseId": "tooluse_1", "name": "lookup", "input": {"q": "x"}}},
                {"toolUse": {"toolUseId": digest, "name": "lookup", "input": {}}},
            ]},
            {"role": "user", "content": [
                {"toolResult": {"toolUseId": "tooluse_1", "content": [{"text": "found"}]}},
                {"toolResult": {"toolUseId": digest, "content": [{"text": "failed"}], "status": "error"}},
                {"text": "and now?"},
            ]},
        ],
        "system": [{"text": "Be brief."}],
        "inferenceConfig": {"maxTokens": 64, "temperature": 1.0, "topP": 0.9, "stopSequences": ["END"]},
        "additionalModelResponseFieldPaths": ["/stop_sequence"],
        "toolConfig": {
            "tools": [
                {"toolSpec": {"name": "lookup", "description": "Looks up.", "strict": True,
                              "inputSchema": {"json": {"type": "object", "properties": {"q": {"type": "string"}}}}}},
                {"toolSpec": {"name": "noop", "inputSchema": {"json": {"type": "object", "properties": {}}}}},
            ],
            "toolChoice": {"tool": {"name": "lookup"}},
        },
        "additionalModelRequestFields": {"top_k": 40},
        "outputConfig": {"textFormat": {"type": "json_schema", "structure": {
            "jsonSchema": {"schema": '{"type":"object"}', "name": "answer"}}}},
    }


@pytest.mark.parametrize(("choice", "expected"), [
    (ToolChoice("auto"), {"auto": {}}), (ToolChoice("required"), {"any": {}}), (None, None),
])
def test_tool_choices(choice: ToolChoice | None, expected: dict[str, Any] | None) -> None:
    provider, upstream = bedrock(lambda r: answer([{"text": "ok"}]))
    provider.complete(request(tools=(Tool("f"),), tool_choice=choice))
    assert sent(upstream)["toolConfig"].get("toolChoice") == expected
    # "none" with no tool call in the conversation: the tools are left out.
    provider.complete(request(tools=(Tool("f"),), tool_choice=ToolChoice("none")))
    assert "toolConfig" not in sent(upstream)


@pytest.mark.parametrize("model", ["anthropic.claude-sonnet-4-6", "us.anthropic.claude-opus-4-6-v1", "anthropic.claude-opus-5"])
def test_reasoning_is_adaptive_thinking_steered_by_converses_effort_from_claude_4_6(model: str) -> None:
    provider, upstream = bedrock(lambda r: answer([{"text": "ok"}]))
    provider.complete(request(model=model, reasoning_effort="minimal"))
    assert sent(upstream)["additionalModelRequestFields"] == {"thinking": {"type": "adaptive", "display": "summarized"}}
    assert sent(upstream)["outputConfig"] == {"effort": "low"}


@pytest.mark.parametrize("model", [MODEL, "anthropic.claude-sonnet-4-20250514-v1:0", "global.anthropic.claude-sonnet-4-5-20250929-v1:0"])
def test_reasoning_is_a_thinking_budget_for_claude_before_4_6(model: str) -> None:
    provider, upstream = bedrock(lambda r: answer([{"text": "ok"}]))
    provider.complete(request(model=model, reasoning_effort="high", max_tokens=4000))
    assert sent(upstream)["additionalModelRequestFields"] == {"thinking": {"type": "enabled", "budget_tokens": 3999}}
    assert "outputConfig" not in sent(upstream)  # these models take no effort
    provider.complete(request(model=model, reasoning_effort="low", max_tokens=4000))
    assert sent(upstream)["additionalModelRequestFields"]["thinking"]["budget_tokens"] == 2048


def test_reasoning_of_other_models_is_converses_effort_and_amazons_top_k_its_own() -> None:
    provider, upstream = bedrock(lambda r: answer([{"text": "ok"}]))
    provider.complete(request(model="us.amazon.nova-premier-v1:0", reasoning_effort="xhigh"))
    assert sent(upstream)["outputConfig"] == {"effort": "xhigh"} and "additionalModelRequestFields" not in sent(upstream)
    provider.complete(request(reasoning_effort="none"))
    assert "additionalModelRequestFields" not in sent(upstream) and "outputConfig" not in sent(upstream)
    provider.complete(request(model="us.amazon.nova-pro-v1:0", sampling=Sampling(top_k=5)))
    assert sent(upstream)["additionalModelRequestFields"] == {"inferenceConfig": {"topK": 5}}


@pytest.mark.parametrize(("chat", "param"), [
    (request(messages=(Message("user", (ImagePart(url="https://x.test/a.png"),)),)), "messages[0].content[0]"),
    (request(messages=(Message("user", (ImagePart(media_type="image/bmp", data=PIXEL),)),)), "messages[0].content[0]"),
    (request(messages=(Message("assistant", "", tool_calls=(ToolCall("t", "f", "[1]"),)),)),
     "messages[0].tool_calls[0].function.arguments"),
    (request(messages=(Message("assistant", "", tool_calls=(ToolCall("t", "f", "{}"),)), Message("tool", "r", tool_call_id="t")),
             tools=(Tool("f"),), tool_choice=ToolChoice("none")), "tool_choice"),
    (request(model="meta.llama3-3-70b-instruct-v1:0", sampling=Sampling(top_k=3)), "top_k"),
    (request(reasoning_effort="low", max_tokens=1024), "max_tokens"),
    (request(model="anthropic.claude-sonnet-4-6", reasoning_effort="low", sampling=Sampling(temperature=0.2)), "temperature"),
    (request(model="anthropic.claude-sonnet-4-6", reasoning_effort="low", sampling=Sampling(top_p=0.5)), "top_p"),
    (request(output_format=OutputFormat(None)), "response_format"),
])
def test_what_converse_cannot_carry_is_refused_before_any_attempt(chat: ChatRequest, param: str) -> None:
    provider, upstream = bedrock(lambda r: answer([{"text": "ok"}]))
    with pytest.raises(InvalidRequest) as refused:
        provider.check(chat)  # the core checks each target's request, with its model, before any attempt
    assert refused.value.param == param and param in str(refused.value)
    assert upstream.requests == []


# ---- the answer ----------------------------------------------------------------------------------


def test_an_answer_with_reasoning_and_a_tool_call_is_read() -> None:
    provider, _ = bedrock(lambda r: answer([
        {"reasoningContent": {"reasoningText": {"text": "thinking...", "signature": "sig"}}},
        {"text": "Let me look."},
        {"toolUse": {"toolUseId": "tooluse_9", "name": "lookup", "input": {"q": 1}}},
    ], stop="tool_use"))
    got = provider.complete(request())
    assert (got.content, got.reasoning, got.finish_reason) == ("Let me look.", "thinking...", "tool_calls")
    assert got.tool_calls == (ToolCall("tooluse_9", "lookup", '{"q":1}'),) and got.usage == Usage(3, 2)


@pytest.mark.parametrize(("stop", "expected"), [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"),
    ("guardrail_intervened", "content_filter"), ("content_filtered", "content_filter"),
    ("model_context_window_exceeded", "length"),
])
def test_stop_reasons(stop: str, expected: str) -> None:
    provider, _ = bedrock(lambda r: answer([{"text": "x"}], stop=stop))
    assert provider.complete(request()).finish_reason == expected


def test_a_malformed_tool_use_is_retried_not_passed_on() -> None:
    provider, _ = bedrock(lambda r: answer([{"text": "x"}], stop="malformed_tool_use"))
    failed = failure(provider, request())
    assert isinstance(failed, UpstreamUnavailable) and "malformed_tool_use" in failed.message


def test_a_stream_is_read_from_frames_split_anywhere() -> None:
    provider, _ = bedrock(lambda r: stream_of(
        event("messageStart", {"role": "assistant"}),
        event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "hm"}}}),
        event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"signature": "s"}}}),
        event("contentBlockStop", {"contentBlockIndex": 0}),
        event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"text": "Hello"}}),
        event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"text": " world"}}),
        event("contentBlockStart", {"contentBlockIndex": 2, "start": {"toolUse": {"toolUseId": "t1", "name": "f"}}}),
        event("contentBlockDelta", {"contentBlockIndex": 2, "delta": {"toolUse": {"input": '{"x":'}}}),
        event("contentBlockDelta", {"contentBlockIndex": 2, "delta": {"toolUse": {"input": "1}"}}}),
        event("messageStop", {"stopReason": "tool_use"}),
        event("metadata", {"usage": {"inputTokens": 5, "outputTokens": 11, "totalTokens": 16}, "metrics": {}}),
    ))
    chunks = list(provider.stream(request(), Watchdog().watch()))
    assert chunks == [
        ChatChunk(reasoning="hm"), ChatChunk(delta="Hello"), ChatChunk(delta=" world"),
        ChatChunk(tool_call=ToolCallDelta(0, "t1", "f")), ChatChunk(tool_call=ToolCallDelta(0, arguments='{"x":')),
        ChatChunk(tool_call=ToolCallDelta(0, arguments="1}")),
        ChatChunk(finish_reason="tool_calls", usage=Usage(5, 11)),
    ]


def test_an_exception_in_a_stream_is_its_error_type() -> None:
    throttled = _frames.serialize(
        {":exception-type": "throttlingException", ":content-type": "application/json", ":message-type": "exception"},
        b'{"message": "Too many requests, please wait before trying again."}',
    )
    provider, _ = bedrock(lambda r: stream_of(event("messageStart", {"role": "assistant"}), throttled))
    failed = failure(provider, request(), stream=True)
    assert isinstance(failed, UpstreamRateLimited) and "ThrottlingException" in failed.message


def test_a_stream_cut_short_or_corrupt_is_unreadable() -> None:
    provider, _ = bedrock(lambda r: stream_of(event("messageStart", {"role": "assistant"})))
    assert "messageStop" in failure(provider, request(), stream=True).message
    frame = bytearray(event("messageStop", {"stopReason": "end_turn"}))
    frame[-1] ^= 0xFF  # the message's CRC no longer matches
    provider, _ = bedrock(lambda r: stream_of(bytes(frame)))
    failed = failure(provider, request(), stream=True)
    assert isinstance(failed, UpstreamUnavailable) and "cannot read" in failed.message


# ---- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "error_class", "status"), [
    ("ThrottlingException", UpstreamRateLimited, 429),
    ("ModelNotReadyException", UpstreamRateLimited, 429),
    ("ServiceUnavailableException", UpstreamUnavailable, 503),
    ("InternalServerException", UpstreamUnavailable, 500),
    ("ModelErrorException", UpstreamUnavailable, 424),
    ("ModelTimeoutException", UpstreamTimeout, 408),
    ("ValidationException", UpstreamRejected, 400),
    ("ResourceNotFoundException", UpstreamRejected, 404),
])
def test_bedrocks_error_types(kind: str, error_class: type[RouterError], status: int) -> None:
    provider, _ = bedrock(lambda r: error(kind, "what went wrong"))
    failed = failure(provider, request())
    assert type(failed) is error_class and getattr(failed, "status") == status
    assert f"{kind}: what went wrong" in failed.message


@pytest.mark.parametrize("kind", ["UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException",
                                  "AccessDeniedException"])
def test_credentials_aws_refuses_are_an_auth_failure_that_never_echoes_them(kind: str) -> None:
    key = "bedrock-api-key-SECRET"
    provider, _ = bedrock(lambda r: error(kind, f"token {key} / {sim_wire.ACCESS_KEY_ID} is invalid"), key=key)
    failed = failure(provider, request())
    assert isinstance(failed, UpstreamAuthFailed) and kind in failed.message
    assert key not in failed.message and sim_wire.ACCESS_KEY_ID not in failed.message


def test_the_error_table_is_botocores() -> None:
    model = botocore.session.get_session().get_service_model("bedrock-runtime")
    errors = {shape.name: shape.metadata["error"]["httpStatusCode"]
              for name in ("Converse", "ConverseStream") for shape in model.operation_model(name).error_shapes}
    errors["ModelStreamErrorException"] = model.shape_for("ModelStreamErrorException").metadata["error"]["httpStatusCode"]
    assert errors == wire.ERROR_STATUSES
    stops = set(model.shape_for("StopReason").enum)
    assert stops == set(wire.STOP_REASONS) | wire.FAILED_OUTPUT
    assert model.metadata["signingName"] == wire.SIGNING_NAME
    assert model.operation_model("Converse").http["requestUri"] == "/model/{modelId}/converse"


def test_no_credentials_names_the_variables_and_sends_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    provider, upstream = bedrock(lambda r: answer([{"text": "ok"}]))
    assert "AWS_ACCESS_KEY_ID" in (provider.unavailable_reason() or "")
    with pytest.raises(ProviderNotConfigured) as missing:
        provider.complete(request())
    assert "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in str(missing.value) and "AWS_BEARER_TOKEN_BEDROCK" in str(missing.value)
    assert upstream.requests == []


# ---- the simulator's Bedrock wire ----------------------------------------------------------------


@pytest.fixture(scope="module")
def aws(sim: str) -> Iterator[Any]:
    client = boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=sim,
                          aws_access_key_id=sim_wire.ACCESS_KEY_ID, aws_secret_access_key=sim_wire.SECRET_ACCESS_KEY,
                          config=botocore.config.Config(retries={"total_max_attempts": 1, "mode": "standard"}))
    yield client
    client.close()


def sim_faults(sim: str, *faults: dict[str, Any]) -> None:
    import urllib.request

    data = json.dumps({"faults": list(faults)}).encode()
    sent_request = urllib.request.Request(f"{sim}/_sim/faults", data=data, method="POST",
                                          headers={"content-type": "application/json"})
    urllib.request.urlopen(sent_request, timeout=5).close()


def test_boto3_reads_the_simulators_answers(aws: Any) -> None:
    got = aws.converse(modelId=MODEL, system=[{"text": "Be brief."}],
                       messages=[{"role": "user", "content": [{"text": "hello there"}]}],
                       inferenceConfig={"maxTokens": 50})
    assert got["output"]["message"]["content"] == [{"text": f"Simulated reply from {MODEL}: hello there"}]
    assert got["stopReason"] == "end_turn" and got["usage"]["outputTokens"] == 6
    streamed = aws.converse_stream(
        modelId=MODEL, messages=[{"role": "user", "content": [{"text": "hello there"}]}],
        inferenceConfig={"maxTokens": 2000},
        additionalModelRequestFields={"thinking": {"type": "enabled", "budget_tokens": 1024}},
    )
    events = list(streamed["stream"])
    kinds = [next(iter(e)) for e in events]
    assert kinds[0] == "messageStart" and kinds[-2:] == ["messageStop", "metadata"]
    texts = [e["contentBlockDelta"]["delta"] for e in events if "contentBlockDelta" in e]
    assert "".join(d.get("text", "") for d in texts) == f"Simulated reply from {MODEL}: hello there"
    assert "".join(d.get("reasoningContent", {}).get("text", "") for d in texts).startswith("Simulated thinking")


def test_boto3_calls_a_tool_and_sends_back_its_result(aws: Any) -> None:
    tools = {"tools": [{"toolSpec": {"name": "lookup", "inputSchema": {"json": {"type": "object"}}}}],
             "toolChoice": {"any": {}}}
    question = {"role": "user", "content": [{"text": "find cats"}]}
    got = aws.converse(modelId=MODEL, messages=[question], toolConfig=tools)
    use = got["output"]["message"]["content"][0]["toolUse"]
    assert got["stopReason"] == "tool_use" and use["input"] == {"query": "find cats"}
    result = {"role": "user", "content": [{"toolResult": {"toolUseId": use["toolUseId"], "content": [{"text": "3 cats"}]}}]}
    final = aws.converse(modelId=MODEL, messages=[question, got["output"]["message"], result], toolConfig=tools)
    assert final["output"]["message"]["content"][0]["text"].endswith("tool said: 3 cats")


def test_the_simulator_refuses_as_bedrock_refuses(aws: Any, sim: str) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        aws.converse(modelId="meta.llama3-3-70b-instruct-v1:0", messages=[{"role": "user", "content": [{"text": "x"}]}],
                     additionalModelRequestFields={"top_k": 3})
    assert refused.value.response["Error"]["Code"] == "ValidationException" and "top_k" in str(refused.value)
    with pytest.raises(botocore.exceptions.ClientError) as alternating:
        aws.converse(modelId=MODEL, messages=[{"role": "assistant", "content": [{"text": "x"}]}])
    assert "must start with a user message" in str(alternating.value)
    for key_id, secret, code in ((sim_wire.ACCESS_KEY_ID, "wrong", "InvalidSignatureException"),
                                 ("AKIAUNKNOWNKEY000000", sim_wire.SECRET_ACCESS_KEY, "UnrecognizedClientException")):
        stranger = boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=sim,
                                aws_access_key_id=key_id, aws_secret_access_key=secret)
        with pytest.raises(botocore.exceptions.ClientError) as unsigned:
            stranger.converse(modelId=MODEL, messages=[{"role": "user", "content": [{"text": "x"}]}])
        assert unsigned.value.response["Error"]["Code"] == code
        assert unsigned.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    sim_faults(sim, {"status": 429, "family": "bedrock"})
    with pytest.raises(botocore.exceptions.ClientError) as throttled:
        aws.converse(modelId=MODEL, messages=[{"role": "user", "content": [{"text": "x"}]}])
    assert throttled.value.response["Error"]["Code"] == "ThrottlingException"


def test_the_provider_on_the_simulator_with_faults(sim: str) -> None:
    provider = BedrockProvider(settings(base_url=sim))
    try:
        chat = request(messages=(Message("user", "hello there"),), sampling=Sampling(stop=("there",)))
        got = provider.complete(chat)
        assert (got.content, got.finish_reason, got.stop_sequence) == (f"Simulated reply from {MODEL}: hello ", "stop", "there")
        chunks = list(provider.stream(chat, Watchdog().watch()))
        assert "".join(c.delta for c in chunks) == got.content and chunks[-1].usage == got.usage
        assert chunks[-1].stop_sequence == "there"
        tooled = request(model="anthropic.claude-sonnet-4-6", tools=(Tool("lookup"),), tool_choice=ToolChoice("required"),
                         reasoning_effort="low")
        streamed = list(provider.stream(tooled, Watchdog().watch()))
        assert streamed[-1].finish_reason == "tool_calls" and "".join(c.reasoning for c in streamed).startswith("Simulated")
        assert "".join(c.tool_call.arguments for c in streamed if c.tool_call) == '{"query": "hi"}'
        sim_faults(sim, {"status": 429, "family": "bedrock", "retry_after": 2})
        limited = failure(provider, chat)
        assert isinstance(limited, UpstreamRateLimited) and "ThrottlingException" in limited.message
        sim_faults(sim, {"status": 400, "family": "bedrock", "message": "bad thing"})
        rejected = failure(provider, chat)
        assert isinstance(rejected, UpstreamRejected) and "ValidationException: bad thing" in rejected.message
        sim_faults(sim, {"error_event_after_tokens": 2, "family": "bedrock"})
        cut = failure(provider, chat, stream=True)
        assert isinstance(cut, UpstreamUnavailable) and "ServiceUnavailableException" in cut.message
        sim_faults(sim, {"garbled_after_tokens": 1, "family": "bedrock"})
        garbled = failure(provider, chat, stream=True)
        assert isinstance(garbled, UpstreamUnavailable) and "cannot read" in garbled.message
    finally:
        provider.close()
    wrong = BedrockProvider(settings(base_url=sim, key="not-the-simulators-key"))
    try:
        failed = failure(wrong, request())
        assert isinstance(failed, UpstreamAuthFailed) and "not-the-simulators-key" not in failed.message
    finally:
        wrong.close()


def test_a_wrong_secret_is_the_simulators_invalid_signature(sim: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-simulators-secret")
    provider = BedrockProvider(settings(base_url=sim))
    try:
        for stream in (False, True):
            failed = failure(provider, request(), stream=stream)
            assert isinstance(failed, UpstreamAuthFailed) and failed.status == 403
            assert "InvalidSignatureException" in failed.message and "not-the-simulators" not in failed.message
    finally:
        provider.close()
