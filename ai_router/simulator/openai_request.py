"""Validation of a Chat Completions request, as the real API does it, down to a `Conversation`.

Checked: the roles and the content each role may carry, user content parts (text, image_url,
input_audio, file), assistant `tool_calls` (their `arguments` must parse as JSON), `tool` messages
(each must answer an id of the assistant message right before its run of tool messages, and an
assistant's tool calls must all be answered before the conversation moves on), `tools`,
`tool_choice`, `parallel_tool_calls`, `response_format` (text, json_object, json_schema with its
name) and `reasoning_effort`. Params name the field as `messages[1].tool_calls[0].id`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .conversation import (
    JSON_MODE_SCHEMA,
    Conversation,
    content_text,
    fail,
    input_token_count,
    optional_bool,
    optional_limit,
    optional_str,
    require_base64,
    require_dict,
    require_http_url,
    require_list,
    require_messages,
    require_model,
    require_object,
    require_str,
    require_tool_name,
    stop_list,
    stream_flag,
)

ROLES = ("system", "developer", "user", "assistant", "tool")
# Part types per role. input_audio and file are accepted as the real API does, and ignored.
USER_PARTS = ("text", "image_url", "input_audio", "file")
ASSISTANT_PARTS = ("text", "refusal")
DATA_URL_RE = re.compile(r"^data:image/[A-Za-z0-9.+-]+;base64,(.*)$", re.DOTALL)
DETAILS = ("auto", "low", "high")
EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
FORMATS = ("text", "json_object", "json_schema")


def parse_openai(body: object) -> Conversation:
    body = require_object(body)
    model = require_model(body)
    messages = require_messages(body)
    # max_completion_tokens supersedes the deprecated max_tokens, as in the real API.
    limit = optional_limit(body, "max_completion_tokens")
    if limit is None:
        limit = optional_limit(body, "max_tokens")
    stops = stop_list(body.get("stop"), "stop")
    stream = stream_flag(body)
    options = body.get("stream_options")
    include_usage = stream and isinstance(options, dict) and options.get("include_usage") is True
    tools = _tools(body.get("tools"))
    tool = _tool_choice(body.get("tool_choice"), tools)
    optional_bool(body.get("parallel_tool_calls"), "parallel_tool_calls")
    json_schema = _response_format(body.get("response_format"))
    effort = body.get("reasoning_effort")
    if effort is not None and effort not in EFFORTS:
        fail(f"must be one of {', '.join(EFFORTS)}", "reasoning_effort")

    # System, developer and tool turns are ordinary messages here, so they count as input too.
    texts: list[str] = []
    images = 0
    answerable: set[str] = set()  # ids of the assistant message the current tool run answers
    unanswered: list[str] = []  # of those, the ids no tool message has answered yet
    in_tool_run = False
    for i, message in enumerate(messages):
        param = f"messages[{i}]"
        role = message.get("role")
        if role not in ROLES:
            fail(f"must be one of {', '.join(ROLES)}", f"{param}.role")
        if role != "tool" and unanswered:
            fail("An assistant message with 'tool_calls' must be followed by tool messages responding to "
                 f"each 'tool_call_id'. The following tool_call_ids did not have response messages: "
                 f"{', '.join(unanswered)}", param)
        content = message.get("content")
        if role in ("system", "developer"):
            _text_parts(content, f"{param}.content")
        elif role == "user":
            images += _user_content(content, f"{param}.content")
        elif role == "assistant":
            calls = _assistant(message, param)
            texts.extend(arguments for _, arguments in calls)
            answerable, unanswered = {call_id for call_id, _ in calls}, [call_id for call_id, _ in calls]
        else:  # tool
            call_id = require_str(message.get("tool_call_id"), f"{param}.tool_call_id", nonempty=True)
            _text_parts(content, f"{param}.content")
            if not in_tool_run:
                fail("messages with role 'tool' must be a response to a preceding message with 'tool_calls'",
                     f"{param}.role")
            if call_id not in answerable:
                fail(f"tool_call_id of '{call_id}' not found in 'tool_calls' of previous message",
                     f"{param}.tool_call_id")
            if call_id in unanswered:
                unanswered.remove(call_id)
        in_tool_run = role == "tool" or (role == "assistant" and bool(unanswered))
        texts.append(content_text(content))
    # A conversation may end on unanswered tool calls: that is the client's turn, not an error here.

    user_text, last_images = "", 0
    for message in reversed(messages):
        if message.get("role") == "user":
            user_text, last_images = content_text(message.get("content")), _image_count(message.get("content"))
            break
    tool_results: tuple[str, ...] | None = None
    if messages[-1].get("role") == "tool":
        run: list[str] = []
        for message in reversed(messages):
            if message.get("role") != "tool":
                break
            run.append(content_text(message.get("content")))
        tool_results = tuple(reversed(run))
    return Conversation(model=model, limit=limit, stops=stops, stream=stream, include_usage=include_usage,
                        input_tokens=input_token_count(texts, images), user_text=user_text, images=last_images,
                        tool_results=tool_results, tool=tool, json_schema=json_schema,
                        tool_schema=_followed_schemas(body.get("tools")).get(tool or ""))


def _response_format(value: object) -> dict[str, Any] | None:
    """The schema the answer must be an instance of; None for plain text."""
    if value is None:
        return None
    spec = require_dict(value, "response_format")
    kind = spec.get("type")
    if kind not in FORMATS:
        fail(f"must be one of {', '.join(FORMATS)}", "response_format.type")
    if kind == "text":
        return None
    if kind == "json_object":
        return JSON_MODE_SCHEMA
    schema = require_dict(spec.get("json_schema"), "response_format.json_schema")
    require_tool_name(schema.get("name"), "response_format.json_schema.name")
    optional_str(schema.get("description"), "response_format.json_schema.description")
    optional_bool(schema.get("strict"), "response_format.json_schema.strict")
    if schema.get("schema") is None:
        return JSON_MODE_SCHEMA  # no schema: any JSON object
    format_schema = require_dict(schema["schema"], "response_format.json_schema.schema")
    if schema.get("strict"):
        check_strict(format_schema, f"response_format '{schema['name']}'", "response_format")
    return format_schema


def check_strict(schema: dict[str, Any], what: str, param: str) -> None:
    """Refuse a strict schema as OpenAI does when one of its objects is open or leaves a property
    out of `required` (strict mode has no optional properties: they are nullable instead)."""
    pending: list[tuple[tuple[str, ...], Any]] = [((), schema)]
    while pending:
        context, node = pending.pop()
        if isinstance(node, list):
            pending.extend((context, item) for item in node)
            continue
        if not isinstance(node, dict):
            continue
        kinds = node.get("type")
        if kinds == "object" or isinstance(kinds, list) and "object" in kinds:
            where = f"Invalid schema for {what}: In context={context!r}, "
            if node.get("additionalProperties") is not False:
                fail(where + "'additionalProperties' is required to be supplied and to be false.", param)
            listed = node.get("required")
            required: list[Any] = listed if isinstance(listed, list) else []
            missing = [name for name in node.get("properties") or {} if name not in required]
            if missing:
                fail(where + "'required' is required to be supplied and to be an array including every "
                     f"key in properties. Missing '{missing[0]}'.", param)
        for key in ("items", "anyOf", "oneOf", "allOf", "not"):
            if key in node:
                pending.append(((*context, key), node[key]))
        for key in ("properties", "$defs", "definitions"):
            if isinstance(node.get(key), dict):
                pending.extend(((*context, key, name), sub) for name, sub in node[key].items())


def _tools(value: object) -> list[str] | None:
    """The declared tool names, in order; None when the request declares none."""
    if value is None:
        return None
    names: list[str] = []
    for i, tool in enumerate(require_list(value, "tools")):
        param = f"tools[{i}]"
        tool = require_dict(tool, param)
        if tool.get("type") != "function":
            fail("must be 'function'", f"{param}.type")
        function = require_dict(tool.get("function"), f"{param}.function")
        names.append(require_tool_name(function.get("name"), f"{param}.function.name"))
        optional_str(function.get("description"), f"{param}.function.description")
        if function.get("parameters") is not None:
            require_dict(function["parameters"], f"{param}.function.parameters")
        optional_bool(function.get("strict"), f"{param}.function.strict")
        if function.get("strict"):
            check_strict(function.get("parameters") or {"type": "object", "properties": {},
                                                         "additionalProperties": False},
                         f"function '{function['name']}'", f"{param}.function.parameters")
    return names


def _followed_schemas(tools: Any) -> dict[str, dict[str, Any]]:
    """The parameters (already validated) of each tool whose call must match them, by name: a
    strict tool's, and one's that names properties but no `query`, where the simulator's usual
    `{"query": ...}` would not fit (a forced output tool: langchain's and pydantic-ai's typed
    outputs)."""
    functions = [tool["function"] for tool in tools or ()]
    return {f["name"]: f.get("parameters") or {} for f in functions
            if f.get("strict") or not takes_query(f.get("parameters"))}


def takes_query(schema: object) -> bool:
    """Whether `{"query": text}` fits a tool schema, as far as the simulator cares: it names no
    properties, or `query` among them."""
    properties = schema.get("properties") if isinstance(schema, dict) else None
    return not isinstance(properties, dict) or not properties or "query" in properties


def _tool_choice(value: object, tools: list[str] | None) -> str | None:
    """The tool the reply calls: the named one, else the first declared; None for "none" or no tools."""
    if value is None:
        return tools[0] if tools else None
    if tools is None:
        fail("'tool_choice' is only allowed when 'tools' are specified", "tool_choice")
    if isinstance(value, str):
        if value not in ("none", "auto", "required"):
            fail("must be 'none', 'auto', 'required' or a named function", "tool_choice")
        return None if value == "none" else tools[0]
    choice = require_dict(value, "tool_choice")
    if choice.get("type") != "function":
        fail("must be 'function'", "tool_choice.type")
    function = require_dict(choice.get("function"), "tool_choice.function")
    name = require_str(function.get("name"), "tool_choice.function.name")
    if name not in tools:
        fail(f"no function named '{name}' was specified in 'tools'", "tool_choice.function.name")
    return name


def _parts(content: object, param: str, allowed: tuple[str, ...]) -> list[dict[str, Any]]:
    if not isinstance(content, list) or not content:
        fail("must be a string or a non-empty array of content parts", param)
    parts: list[dict[str, Any]] = content
    for j, part in enumerate(parts):
        part = require_dict(part, f"{param}[{j}]")
        kind = part.get("type")
        if kind not in allowed:
            fail(f"must be one of {', '.join(allowed)}", f"{param}[{j}].type")
        if kind in ("text", "refusal"):
            require_str(part.get(kind), f"{param}[{j}].{kind}")
    return parts


def _text_parts(content: object, param: str) -> None:
    """A string, or a list of text parts (system, developer and tool messages)."""
    if not isinstance(content, str):
        _parts(content, param, ("text",))


def _user_content(content: object, param: str) -> int:
    """Validate a user message's content; the number of image parts."""
    if isinstance(content, str):
        return 0
    images = 0
    for j, part in enumerate(_parts(content, param, USER_PARTS)):
        kind = part["type"]
        if kind == "image_url":
            images += 1
            image = require_dict(part.get("image_url"), f"{param}[{j}].image_url")
            url = require_str(image.get("url"), f"{param}[{j}].image_url.url")
            data_url = DATA_URL_RE.match(url)
            if data_url:
                require_base64(data_url.group(1), f"{param}[{j}].image_url.url")
            elif url.startswith("data:"):
                fail("a data URL must be data:image/<type>;base64,<data>", f"{param}[{j}].image_url.url")
            else:
                require_http_url(url, f"{param}[{j}].image_url.url")
            detail = image.get("detail")
            if detail is not None and detail not in DETAILS:
                fail(f"must be one of {', '.join(DETAILS)}", f"{param}[{j}].image_url.detail")
        elif kind == "input_audio":
            audio = require_dict(part.get("input_audio"), f"{param}[{j}].input_audio")
            require_str(audio.get("data"), f"{param}[{j}].input_audio.data")
            require_str(audio.get("format"), f"{param}[{j}].input_audio.format")
        elif kind == "file":
            require_dict(part.get("file"), f"{param}[{j}].file")
    return images


def _image_count(content: object) -> int:
    if not isinstance(content, list):
        return 0
    return sum(1 for part in content if isinstance(part, dict) and part.get("type") == "image_url")


def _assistant(message: dict[str, Any], param: str) -> list[tuple[str, str]]:
    """Validate an assistant message; its tool calls as (id, arguments)."""
    calls: list[tuple[str, str]] = []
    raw_calls = message.get("tool_calls")
    if raw_calls is not None:
        for k, call in enumerate(require_list(raw_calls, f"{param}.tool_calls")):
            cparam = f"{param}.tool_calls[{k}]"
            call = require_dict(call, cparam)
            call_id = require_str(call.get("id"), f"{cparam}.id", nonempty=True)
            if call.get("type") != "function":
                fail("must be 'function'", f"{cparam}.type")
            function = require_dict(call.get("function"), f"{cparam}.function")
            require_str(function.get("name"), f"{cparam}.function.name", nonempty=True)
            arguments = require_str(function.get("arguments"), f"{cparam}.function.arguments")
            try:
                json.loads(arguments)
            except ValueError:
                fail("must be a JSON string", f"{cparam}.function.arguments")
            calls.append((call_id, arguments))
    content = message.get("content")
    if content is None:
        if not calls:
            fail("required unless 'tool_calls' is specified", f"{param}.content")
    elif not isinstance(content, str):
        _parts(content, f"{param}.content", ASSISTANT_PARTS)
    optional_str(message.get("refusal"), f"{param}.refusal")
    return calls
