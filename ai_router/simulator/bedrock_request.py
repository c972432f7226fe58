"""Validation of a Bedrock Converse request, as the service does it, down to a `Conversation`.

The model and whether to stream come from the URL (`/model/{modelId}/converse`,
`/converse-stream`), so the parser takes a `BedrockCall`, not the body alone. Checked: the
request's members (botocore's ConverseRequest; others refused), `messages` (starting with a user
turn, roles alternating, content blocks of exactly one kind, no blank text, toolUse in assistant
turns and toolResult in user turns answering the calls of the turn before, toolConfig present
when either is), `system`, `inferenceConfig`, `toolConfig` (toolSpec with an inputSchema.json,
toolChoice of one kind naming a declared tool), `additionalModelRequestFields` (top_k and
thinking for Anthropic models, inferenceConfig.topK for Amazon's; any other key refused, as the
model refuses it), `outputConfig.textFormat`. Errors name the field as `messages.1.content.0`,
Bedrock's notation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, NoReturn

from ai_router.wire import bedrock_converse as wire

from .conversation import (
    BadRequest,
    Conversation,
    input_token_count,
    require_base64,
    require_dict,
    require_list,
    require_str,
    require_tool_name,
)
from .openai_request import takes_query
from .reply import Reply, compose

FIELDS = frozenset({
    "messages", "system", "inferenceConfig", "toolConfig", "guardrailConfig", "additionalModelRequestFields",
    "promptVariables", "additionalModelResponseFieldPaths", "requestMetadata", "performanceConfig",
    "serviceTier", "outputConfig",
})  # fmt: skip
BLOCKS = ("text", "image", "document", "video", "audio", "toolUse", "toolResult", "guardContent",
          "cachePoint", "reasoningContent", "citationsContent", "searchResult")
INFERENCE_FIELDS = frozenset({"maxTokens", "temperature", "topP", "stopSequences"})
ANTHROPIC_FIELDS = frozenset({"top_k", "thinking", "anthropic_beta"})
EFFORTS = ("low", "medium", "high", "xhigh", "max")


@dataclass(frozen=True, slots=True)
class BedrockCall:
    """A request as the simulator receives it: the model and method of its URL, and its body."""

    model: str
    stream: bool
    body: object


def fail(message: str) -> NoReturn:
    raise BadRequest(message)


def bedrock_reply(call: object) -> Reply:
    """Validate a Converse request and compute its reply."""
    if not isinstance(call, BedrockCall):
        raise TypeError("the Bedrock wire parses a BedrockCall")
    return compose(parse_bedrock(call))


def parse_bedrock(call: BedrockCall) -> Conversation:
    if not isinstance(call.body, dict):
        fail("Malformed input request: expected an object")
    body: dict[str, Any] = call.body
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        fail(f"Malformed input request: extraneous key [{unknown[0]}] is not permitted")
    messages = require_list(body.get("messages"), "messages")
    paths = body.get("additionalModelResponseFieldPaths") or []
    if not isinstance(paths, list) or not all(isinstance(p, str) and p.startswith("/") for p in paths):
        fail("additionalModelResponseFieldPaths: must be a list of JSON pointers (\"/stop_sequence\")")
    config = require_dict(body.get("inferenceConfig") or {}, "inferenceConfig")
    limit, stops = _inference(config)
    tools, schemas, tool = _tool_config(body.get("toolConfig"))
    thinking = _additional(call.model, body.get("additionalModelRequestFields"), limit)
    texts = [require_str(require_dict(block, f"system.{i}").get("text"), f"system.{i}.text")
             for i, block in enumerate(body.get("system") or [])]

    images = 0
    previous_calls: list[str] = []
    tool_blocks = False
    for i, raw in enumerate(messages):
        message = require_dict(raw, f"messages.{i}")
        role = str(message.get("role"))
        if role not in (wire.USER, wire.ASSISTANT):
            fail(f"messages.{i}.role: must be one of user, assistant")
        expected = wire.USER if i % 2 == 0 else wire.ASSISTANT
        if role != expected:
            fail("A conversation must start with a user message. Try again with a conversation that starts "
                 "with a user message." if i == 0 else
                 "A conversation must alternate between user and assistant roles. Make sure the conversation "
                 "alternates between user and assistant roles and try again.")
        blocks = _blocks(message.get("content"), f"messages.{i}.content", role)
        texts += [b["text"] for b in blocks if "text" in b]
        images += sum(1 for b in blocks if "image" in b)
        calls = [b["toolUse"]["toolUseId"] for b in blocks if "toolUse" in b]
        texts += [json.dumps(b["toolUse"]["input"]) for b in blocks if "toolUse" in b]
        answered = [b["toolResult"]["toolUseId"] for b in blocks if "toolResult" in b]
        texts += [_result_text(b["toolResult"]) for b in blocks if "toolResult" in b]
        if answered and sorted(answered) != sorted(previous_calls):
            fail(f"messages.{i}.content: The toolResult blocks do not match the toolUse blocks of the previous "
                 "turn: each toolUse needs one toolResult with its toolUseId.")
        tool_blocks = tool_blocks or bool(calls or answered)
        previous_calls = calls
    if tool_blocks and tools is None:
        fail("The toolConfig field must be defined when using toolUse and toolResult content blocks.")

    last = messages[-1]["content"]
    results = [_result_text(b["toolResult"]) for b in last if "toolResult" in b]
    user_text, last_images = "", 0
    for message in reversed(messages):
        if message["role"] == wire.USER and any("text" in b for b in message["content"]):
            user_text = "".join(b["text"] for b in message["content"] if "text" in b)
            last_images = sum(1 for b in message["content"] if "image" in b)
            break
    return Conversation(model=call.model, limit=limit, stops=stops, stream=call.stream, include_usage=False,
                        input_tokens=input_token_count(texts, images), user_text=user_text, images=last_images,
                        tool_results=tuple(results) if results else None, tool=tool,
                        json_schema=_output(body.get("outputConfig")), thinking=thinking,
                        tool_schema=schemas.get(tool or ""))


def _inference(config: dict[str, Any]) -> tuple[int | None, tuple[str, ...]]:
    unknown = sorted(set(config) - INFERENCE_FIELDS)
    if unknown:
        fail(f"Malformed input request: extraneous key [inferenceConfig.{unknown[0]}] is not permitted")
    limit = config.get("maxTokens")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        fail("inferenceConfig.maxTokens: must be an integer >= 1")
    for name in ("temperature", "topP"):
        value = config.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1):
            fail(f"inferenceConfig.{name}: must be a number between 0 and 1")
    stops = config.get("stopSequences") or []
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        fail("inferenceConfig.stopSequences: must be a list of non-empty strings")
    return limit, tuple(stops)


def _blocks(value: object, param: str, role: str) -> list[dict[str, Any]]:
    blocks = require_list(value, param)
    for j, raw in enumerate(blocks):
        where = f"{param}.{j}"
        block = require_dict(raw, where)
        kinds = [k for k in BLOCKS if k in block]
        if len(kinds) != 1 or len(block) != 1:
            fail(f"{where}: a ContentBlock must have exactly one member")
        kind = kinds[0]
        if kind == "text" and not require_str(block["text"], f"{where}.text").strip():
            fail(f"The text field in the ContentBlock object at {where} is blank. Add text to the text "
                 "field, and try again.")
        elif kind == "image":
            image = require_dict(block["image"], f"{where}.image")
            if image.get("format") not in wire.IMAGE_FORMATS.values():
                fail(f"{where}.image.format: must be one of {', '.join(wire.IMAGE_FORMATS.values())}")
            require_base64(require_dict(image.get("source"), f"{where}.image.source").get("bytes"),
                           f"{where}.image.source.bytes")
        elif kind == "toolUse":
            if role != wire.ASSISTANT:
                fail(f"{where}: a toolUse block belongs in an assistant turn")
            use = require_dict(block["toolUse"], f"{where}.toolUse")
            _require_tool_use_id(use.get("toolUseId"), f"{where}.toolUse.toolUseId")
            require_tool_name(use.get("name"), f"{where}.toolUse.name")
            require_dict(use.get("input"), f"{where}.toolUse.input")
        elif kind == "toolResult":
            if role != wire.USER:
                fail(f"{where}: a toolResult block belongs in a user turn")
            result = require_dict(block["toolResult"], f"{where}.toolResult")
            _require_tool_use_id(result.get("toolUseId"), f"{where}.toolResult.toolUseId")
            for k, item in enumerate(require_list(result.get("content"), f"{where}.toolResult.content")):
                if not any(key in require_dict(item, f"{where}.toolResult.content.{k}") for key in ("text", "json", "image")):
                    fail(f"{where}.toolResult.content.{k}: must have text, json or image")
            if result.get("status") not in (None, "success", "error"):
                fail(f"{where}.toolResult.status: must be success or error")
        elif kind == "reasoningContent" and role != wire.ASSISTANT:
            fail(f"{where}: a reasoningContent block belongs in an assistant turn")
    return blocks


def _result_text(result: dict[str, Any]) -> str:
    return "".join(item["text"] if "text" in item else json.dumps(item.get("json"))
                   for item in result["content"] if "text" in item or "json" in item)


def _tool_config(value: object) -> tuple[list[str] | None, dict[str, dict[str, Any]], str | None]:
    """(declared tool names, the schemas a call must follow, the tool the reply calls)."""
    if value is None:
        return None, {}, None
    config = require_dict(value, "toolConfig")
    names: list[str] = []
    schemas: dict[str, dict[str, Any]] = {}
    for i, raw in enumerate(require_list(config.get("tools"), "toolConfig.tools")):
        spec = require_dict(require_dict(raw, f"toolConfig.tools.{i}").get("toolSpec"), f"toolConfig.tools.{i}.toolSpec")
        where = f"toolConfig.tools.{i}.toolSpec"
        name = require_tool_name(spec.get("name"), f"{where}.name")
        if name in names:
            fail(f"{where}.name: The tool name {name} is duplicated")
        if "description" in spec:
            require_str(spec["description"], f"{where}.description", nonempty=True)
        schema = require_dict(require_dict(spec.get("inputSchema"), f"{where}.inputSchema").get("json"),
                              f"{where}.inputSchema.json")
        names.append(name)
        if spec.get("strict") or not takes_query(schema):
            schemas[name] = schema
    choice = config.get("toolChoice")
    if choice is None:
        return names, schemas, names[0]
    choice = require_dict(choice, "toolConfig.toolChoice")
    if len(choice) != 1 or next(iter(choice)) not in ("auto", "any", "tool"):
        fail("toolConfig.toolChoice: must have exactly one of auto, any, tool")
    if "tool" in choice:
        name = require_str(require_dict(choice["tool"], "toolConfig.toolChoice.tool").get("name"),
                           "toolConfig.toolChoice.tool.name")
        if name not in names:
            fail(f"toolConfig.toolChoice.tool.name: {name} is not a tool in toolConfig.tools")
        return names, schemas, name
    return names, schemas, names[0]


def _additional(model: str, value: object, limit: int | None) -> Any:
    """Claude's thinking, shown ("summarized"), or None; what the model takes no field for is
    refused as the model refuses it."""
    if value is None:
        return None
    fields = require_dict(value, "additionalModelRequestFields")
    vendor = wire.model_vendor(model)
    allowed = ANTHROPIC_FIELDS if vendor == "anthropic" else {"inferenceConfig"} if vendor == "amazon" else set()
    unknown = sorted(set(fields) - allowed)
    if unknown:
        fail(f"Malformed input request: #: extraneous key [{unknown[0]}] is not permitted, please reformat "
             "your input and try again.")
    if "top_k" in fields and (isinstance(fields["top_k"], bool) or not isinstance(fields["top_k"], int)):
        fail("top_k: must be an integer")
    if "inferenceConfig" in fields and set(require_dict(fields["inferenceConfig"], "inferenceConfig")) - {"topK"}:
        fail("Malformed input request: #/inferenceConfig: extraneous key is not permitted")
    if "thinking" not in fields:
        return None
    thinking = require_dict(fields["thinking"], "thinking")
    if thinking.get("type") == "adaptive":
        if thinking.get("display") not in (None, "summarized", "omitted"):
            fail("thinking.display: must be summarized or omitted")
        return "omitted" if thinking.get("display") == "omitted" else "summarized"
    budget = thinking.get("budget_tokens")
    if thinking.get("type") != "enabled" or isinstance(budget, bool) or not isinstance(budget, int):
        return fail("thinking: type must be enabled (with an integer budget_tokens) or adaptive")
    if budget < wire.MIN_THINKING_BUDGET or (limit is not None and budget >= limit):
        fail(f"thinking.budget_tokens: must be at least {wire.MIN_THINKING_BUDGET} and less than max_tokens")
    return "summarized"


def _output(value: object) -> dict[str, Any] | None:
    if value is None:
        return None
    config = require_dict(value, "outputConfig")
    if set(config) - {"textFormat", "effort"}:
        fail(f"Malformed input request: extraneous key [outputConfig.{sorted(set(config) - {'textFormat', 'effort'})[0]}]")
    if "effort" in config and config["effort"] not in EFFORTS:
        fail(f"outputConfig.effort: must be one of {', '.join(EFFORTS)}")
    if "textFormat" not in config:
        return None
    text_format = require_dict(config["textFormat"], "outputConfig.textFormat")
    if text_format.get("type") != wire.JSON_SCHEMA:
        fail(f"outputConfig.textFormat.type: must be {wire.JSON_SCHEMA}")
    where = "outputConfig.textFormat.structure.jsonSchema"
    schema = require_dict(require_dict(text_format.get("structure"), "outputConfig.textFormat.structure")
                          .get("jsonSchema"), where)
    try:
        parsed = json.loads(require_str(schema.get("schema"), f"{where}.schema", nonempty=True))
    except ValueError:
        parsed = None
    return require_dict(parsed, f"{where}.schema")


def _require_tool_use_id(value: object, where: str) -> None:
    """A toolUseId as botocore's model constrains it."""
    if not wire.TOOL_USE_ID_RE.match(require_str(value, where)):
        fail(f"{where}: must match [a-zA-Z0-9_.:-]{{1,64}}")
