"""Validation of a Gemini generateContent request, as the real API does it, down to a
`Conversation`; and the reply to it.

The model and whether to stream come from the URL (`/v1beta/models/{model}:generateContent`,
`:streamGenerateContent?alt=sse`), so the parser takes a `GeminiCall`, not the body alone.
Checked: unknown top-level fields (refused, as Google's JSON parser does), `contents` (roles
`user`/`model`, parts of exactly one of text, inlineData, fileData, functionCall, functionResponse;
`thought` and `thoughtSignature` allowed beside them), `systemInstruction`, `tools`
(functionDeclarations with a `parameters` or `parametersJsonSchema`), `toolConfig`,
`generationConfig` (maxOutputTokens, stopSequences up to 5, responseMimeType with
responseSchema / responseJsonSchema, thinkingConfig). Errors name the field as
`contents[1].parts[0].functionCall.name`, Google's notation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from ai_router.wire import gemini_generate as wire

from .conversation import (
    JSON_MODE_SCHEMA,
    BadRequest,
    Conversation,
    fail,
    input_token_count,
    optional_str,
    require_base64,
    require_dict,
    require_list,
    require_str,
    require_tool_name,
)
from .reply import Reply, compose

FIELDS = frozenset({
    "contents", "systemInstruction", "tools", "toolConfig", "generationConfig", "safetySettings",
    "cachedContent", "labels",
})
CONFIG_FIELDS = frozenset({
    "temperature", "topP", "topK", "candidateCount", "maxOutputTokens", "stopSequences",
    "responseMimeType", "responseSchema", "responseJsonSchema", "thinkingConfig", "seed",
    "presencePenalty", "frequencyPenalty", "responseLogprobs", "logprobs", "responseModalities",
    "mediaResolution",
})
PART_DATA = ("text", "inlineData", "fileData", "functionCall", "functionResponse")
MODES = ("AUTO", "ANY", "NONE", "VALIDATED", "MODE_UNSPECIFIED")
MIME_TYPES = ("text/plain", "application/json", "text/x.enum")
LEVELS = ("minimal", "low", "medium", "high", "MINIMAL", "LOW", "MEDIUM", "HIGH")


@dataclass(frozen=True, slots=True)
class GeminiCall:
    """A request as the simulator receives it: the model and method of its URL, and its body."""

    model: str
    stream: bool
    body: object


def gemini_reply(call: object) -> Reply:
    """Validate a generateContent request and compute its reply."""
    if not isinstance(call, GeminiCall):
        raise TypeError("the Gemini wire parses a GeminiCall")
    return compose(parse_gemini(call))


def parse_gemini(call: GeminiCall) -> Conversation:
    if not isinstance(call.body, dict):
        raise BadRequest("Invalid JSON payload received. Expected an object.")
    body: dict[str, Any] = call.body
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        fail(f'Invalid JSON payload received. Unknown name "{unknown[0]}": Cannot find field.', unknown[0])
    contents = require_list(body.get("contents"), "contents")
    config = require_dict(body.get("generationConfig") or {}, "generationConfig")
    limit, stops, json_schema, thinking = _generation_config(config)
    texts: list[str] = []
    if body.get("systemInstruction") is not None:
        system = require_dict(body["systemInstruction"], "systemInstruction")
        texts += _texts(_parts(system.get("parts"), "systemInstruction.parts", "user"))
    schemas = _tools(body.get("tools"))
    tools = list(schemas) or None
    tool = _tool(body.get("toolConfig"), tools)

    images = 0
    previous_calls: list[str] = []
    for i, raw in enumerate(contents):
        param = f"contents[{i}]"
        content = require_dict(raw, param)
        role = content.get("role", "user")
        if role not in (wire.USER, wire.MODEL):
            fail("Please use a valid role: user, model.", f"{param}.role")
        parts = _parts(content.get("parts"), f"{param}.parts", role)
        texts += _texts(parts)
        images += sum(1 for p in parts if "inlineData" in p or "fileData" in p)
        calls = [p["functionCall"]["name"] for p in parts if "functionCall" in p]
        texts += [json.dumps(p["functionCall"].get("args") or {}) for p in parts if "functionCall" in p]
        answered = [p["functionResponse"]["name"] for p in parts if "functionResponse" in p]
        texts += [_response_text(p["functionResponse"]) for p in parts if "functionResponse" in p]
        if answered and sorted(answered) != sorted(previous_calls):
            fail("Please ensure that the number of function response parts is equal to the number of "
                 "function call parts of the function call turn.", param)
        previous_calls = calls

    last = contents[-1]
    last_parts = last.get("parts") or []
    results = [_response_text(p["functionResponse"]) for p in last_parts if "functionResponse" in p]
    user_text, last_images = "", 0
    for content in reversed(contents):
        if content.get("role", "user") == wire.USER and any("text" in p for p in content["parts"]):
            user_text = "".join(_texts(content["parts"]))
            last_images = sum(1 for p in content["parts"] if "inlineData" in p or "fileData" in p)
            break
    return Conversation(model=call.model, limit=limit, stops=stops, stream=call.stream, include_usage=False,
                        input_tokens=input_token_count(texts, images), user_text=user_text, images=last_images,
                        tool_results=tuple(results) if results else None, tool=tool, json_schema=json_schema,
                        thinking=thinking, tool_schema=schemas.get(tool or "") or None)


def _generation_config(
    config: dict[str, Any],
) -> tuple[int | None, tuple[str, ...], dict[str, Any] | None, Literal["summarized", "omitted"] | None]:
    unknown = sorted(set(config) - CONFIG_FIELDS)
    if unknown:
        fail(f'Invalid JSON payload received. Unknown name "{unknown[0]}" at \'generation_config\': '
             "Cannot find field.", f"generationConfig.{unknown[0]}")
    limit = config.get("maxOutputTokens")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        fail("must be a positive integer", "generationConfig.maxOutputTokens")
    stops = config.get("stopSequences") or []
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        fail("must be a list of strings", "generationConfig.stopSequences")
    if len(stops) > wire.MAX_STOP_SEQUENCES:
        fail(f"The number of stop sequences must be at most {wire.MAX_STOP_SEQUENCES}.",
             "generationConfig.stopSequences")
    mime = config.get("responseMimeType")
    if mime is not None and mime not in MIME_TYPES:
        fail(f"allowed mimetypes are {', '.join(MIME_TYPES)}", "generationConfig.responseMimeType")
    schema = config.get("responseJsonSchema") or config.get("responseSchema")
    if "responseJsonSchema" in config and "responseSchema" in config:
        fail("responseSchema and responseJsonSchema cannot both be set", "generationConfig.responseJsonSchema")
    if schema is not None and mime != wire.JSON_MIME_TYPE:
        fail("a response schema needs responseMimeType application/json", "generationConfig.responseMimeType")
    json_schema: dict[str, Any] | None = None
    if mime == wire.JSON_MIME_TYPE:
        json_schema = _lowercase_types(require_dict(schema, "generationConfig.responseJsonSchema")) \
            if schema is not None else JSON_MODE_SCHEMA
    return limit, tuple(s for s in stops if s), json_schema, _thinking(config.get("thinkingConfig"))


def _thinking(value: object) -> Literal["summarized", "omitted"] | None:
    """Thoughts shown (includeThoughts) or only counted; none with a budget of 0 or no config."""
    if value is None:
        return None
    config = require_dict(value, "generationConfig.thinkingConfig")
    budget, level = config.get("thinkingBudget"), config.get("thinkingLevel")
    if budget is not None and level is not None:
        fail("thinking_budget and thinking_level are not supported together.",
             "generationConfig.thinkingConfig")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget < -1):
        fail("must be an integer >= -1", "generationConfig.thinkingConfig.thinkingBudget")
    if level is not None and level not in LEVELS:
        fail(f"must be one of {', '.join(LEVELS[:4])}", "generationConfig.thinkingConfig.thinkingLevel")
    if budget == 0:
        return None
    return "summarized" if config.get("includeThoughts") is True else "omitted"


def _lowercase_types(schema: Any) -> Any:
    """responseSchema (an OpenAPI subset) spells types in capitals: the JSON Schema of it."""
    if isinstance(schema, dict):
        return {k: (v.lower() if k == "type" and isinstance(v, str) else _lowercase_types(v))
                for k, v in schema.items()}
    if isinstance(schema, list):
        return [_lowercase_types(item) for item in schema]
    return schema


def _parts(value: object, param: str, role: str) -> list[dict[str, Any]]:
    parts = require_list(value, param)
    checked = []
    for j, raw in enumerate(parts):
        part = require_dict(raw, f"{param}[{j}]")
        kinds = [k for k in PART_DATA if k in part]
        if len(kinds) != 1:
            fail("a part must have exactly one of text, inlineData, fileData, functionCall, "
                 "functionResponse", f"{param}[{j}]")
        where = f"{param}[{j}].{kinds[0]}"
        if kinds[0] == "text":
            require_str(part["text"], where)
        elif kinds[0] == "inlineData":
            data = require_dict(part["inlineData"], where)
            require_str(data.get("mimeType"), f"{where}.mimeType", nonempty=True)
            require_base64(data.get("data"), f"{where}.data")
        elif kinds[0] == "fileData":
            require_str(require_dict(part["fileData"], where).get("fileUri"), f"{where}.fileUri", nonempty=True)
        elif kinds[0] == "functionCall":
            if role != wire.MODEL:
                fail("a functionCall part belongs in a model turn", where)
            call = require_dict(part["functionCall"], where)
            require_tool_name(call.get("name"), f"{where}.name")
            if call.get("args") is not None:
                require_dict(call["args"], f"{where}.args")
        else:
            if role != wire.USER:
                fail("a functionResponse part belongs in a user turn", where)
            answer = require_dict(part["functionResponse"], where)
            require_tool_name(answer.get("name"), f"{where}.name")
            require_dict(answer.get("response"), f"{where}.response")
        optional_str(part.get("thoughtSignature"), f"{param}[{j}].thoughtSignature")
        checked.append(part)
    return checked


def _texts(parts: list[dict[str, Any]]) -> list[str]:
    return [p["text"] for p in parts if isinstance(p.get("text"), str) and not p.get("thought")]


def _response_text(response: dict[str, Any]) -> str:
    """What a function answered: its `output` (or `error`) when it is text, else the JSON."""
    body = response["response"]
    for key in ("output", "error", "result"):
        if isinstance(body.get(key), str):
            return str(body[key])
    return json.dumps(body)


def _tools(value: object) -> dict[str, dict[str, Any]]:
    """The declared functions' parameter schemas (JSON Schema), by name. Gemini has no strict
    flag: it decodes a call against its declaration (by constrained decoding in the ANY and
    VALIDATED modes), so the simulator's call to any function is an instance of its schema."""
    if value is None:
        return {}
    schemas: dict[str, dict[str, Any]] = {}
    for i, raw in enumerate(require_list(value, "tools")):
        tool = require_dict(raw, f"tools[{i}]")
        for j, declared in enumerate(tool.get("functionDeclarations") or []):
            param = f"tools[{i}].functionDeclarations[{j}]"
            declaration = require_dict(declared, param)
            name = require_tool_name(declaration.get("name"), f"{param}.name")
            if name in schemas:
                fail(f"Duplicate function declaration found: {name}", f"{param}.name")
            schemas[name] = {}
            optional_str(declaration.get("description"), f"{param}.description")
            # Google's JSON parser takes a field's proto name too (google-genai sends this one so).
            json_schema = declaration.get("parametersJsonSchema", declaration.get("parameters_json_schema"))
            if "parameters" in declaration and json_schema is not None:
                fail("parameters and parametersJsonSchema cannot both be set", f"{param}.parametersJsonSchema")
            if json_schema is not None:
                schemas[name] = require_dict(json_schema, f"{param}.parametersJsonSchema")
            elif declaration.get("parameters") is not None:
                schemas[name] = _lowercase_types(require_dict(declaration["parameters"], f"{param}.parameters"))
    return schemas


def _tool(value: object, tools: list[str] | None) -> str | None:
    """The function the reply calls: one allowed by toolConfig, else the first declared."""
    if value is None:
        return tools[0] if tools else None
    config = require_dict(require_dict(value, "toolConfig").get("functionCallingConfig") or {},
                          "toolConfig.functionCallingConfig")
    mode = config.get("mode", "AUTO")
    if mode not in MODES:
        fail(f"must be one of {', '.join(MODES)}", "toolConfig.functionCallingConfig.mode")
    allowed = config.get("allowedFunctionNames")
    if allowed is not None:
        if mode != "ANY":
            fail("allowedFunctionNames may be set only with mode ANY",
                 "toolConfig.functionCallingConfig.allowedFunctionNames")
        for name in require_list(allowed, "toolConfig.functionCallingConfig.allowedFunctionNames"):
            if name not in (tools or []):
                fail(f"function {name!r} is not declared in tools",
                     "toolConfig.functionCallingConfig.allowedFunctionNames")
        return str(allowed[0])
    if mode == "NONE" or not tools:
        return None
    return tools[0]
