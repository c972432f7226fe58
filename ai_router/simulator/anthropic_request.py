"""Validation of a Messages request, as the real API does it, down to a `Conversation`.

Checked: `max_tokens`, the top-level `system` (a string or text blocks), roles (`user`/`assistant`
only; a `system` message is refused), content blocks (`text`, `image` with a base64 or url source,
`tool_use` in assistant turns, `tool_result` in user turns; `cache_control` accepted anywhere),
the pairing of tool results with the previous assistant turn's `tool_use` blocks, `tools` and
`tool_choice`, `output_config` (effort, a json_schema format) and `thinking` (enabled with a
budget of at least 1,024, under max_tokens when generating, adaptive, disabled; no temperature, top_k, low top_p
or forced tool use beside a budget). Thinking blocks of earlier answers are taken in assistant
turns. Errors name the field as `messages.1.content.0.tool_use_id`.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from .conversation import (
    BadRequest,
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
    require_messages,
    require_model,
    require_object,
    require_str,
    require_tool_name,
    stop_list,
    stream_flag,
)
from .openai_request import takes_query

MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
BLOCKS = {
    "user": ("text", "image", "tool_result"),
    "assistant": ("text", "image", "tool_use", "thinking", "redacted_thinking"),
}
CHOICES = ("auto", "any", "none", "tool")
EFFORTS = ("low", "medium", "high", "xhigh", "max")
THINKING = ("enabled", "adaptive", "disabled")
DISPLAYS = ("summarized", "omitted")
MIN_BUDGET = 1024


def parse_anthropic(body: object) -> Conversation:
    body = require_object(body)
    model = require_model(body)
    messages = require_messages(body)
    if body.get("max_tokens") is None:
        raise BadRequest("max_tokens: Field required", "max_tokens")
    limit = optional_limit(body, "max_tokens")
    stops = stop_list(body.get("stop_sequences"), "stop_sequences")
    stream = stream_flag(body)
    system = body.get("system")
    if system is not None and not isinstance(system, str):
        if not isinstance(system, list):
            fail("must be a string or a list of text blocks", "system")
        for j, block in enumerate(system):
            _block(block, f"system.{j}", ("text",))
    tools = _tools(body.get("tools"))
    tool = _tool_choice(body.get("tool_choice"), tools)
    json_schema = _output_config(body.get("output_config"))
    thinking = _thinking(body)

    texts = [content_text(system)]
    images = 0
    previous_uses: list[str] = []  # tool_use ids of the previous message
    for i, message in enumerate(messages):
        param = f"messages.{i}"
        role = message.get("role")
        if role == "system":
            fail('Unexpected role "system". The Messages API accepts a top-level `system` parameter, '
                 'not "system" as an input message role: use the top-level system parameter', f"{param}.role")
        if role not in BLOCKS:
            fail("Input should be 'user' or 'assistant'", f"{param}.role")
        content = message.get("content")
        uses: list[str] = []
        results: list[str] = []
        if not isinstance(content, str):
            if not isinstance(content, list):
                fail("must be a string or a list of content blocks", f"{param}.content")
            for j, raw in enumerate(content):
                block = _block(raw, f"{param}.content.{j}", BLOCKS[role])
                kind = block["type"]
                if kind == "image":
                    images += 1
                elif kind == "tool_use":
                    uses.append(block["id"])
                    texts.append(json.dumps(block["input"]))
                elif kind == "tool_result":
                    results.append(block["tool_use_id"])
                    texts.append(_result_text(block))
                    images += _result_images(block)
        texts.append(content_text(content))
        unexpected = [r for r in results if r not in previous_uses]
        if unexpected:
            if not previous_uses:
                fail("`tool_result` block(s) provided when previous message does not have any `tool_use` blocks",
                     param)
            fail(f"unexpected `tool_use_id` found in `tool_result` blocks: {', '.join(unexpected)}. Each "
                 "`tool_result` block must have a corresponding `tool_use` block in the previous message.", param)
        missing = [u for u in previous_uses if u not in results]
        if missing:
            fail(f"`tool_use` ids were found without `tool_result` blocks immediately after: {', '.join(missing)}. "
                 "Each `tool_use` block must have a corresponding `tool_result` block in the next message.",
                 f"messages.{i - 1}")
        previous_uses = uses
    # A conversation may end on an assistant turn with tool_use blocks: nothing follows to check.

    user_text, last_images, tool_results = "", 0, None
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            user_text = content_text(content)
            if isinstance(content, list):
                last_images = sum(1 for b in content if b["type"] == "image")
                answers = [_result_text(b) for b in content if b["type"] == "tool_result"]
                tool_results = tuple(answers) if answers else None
            break
    return Conversation(model=model, limit=limit, stops=stops, stream=stream, include_usage=False,
                        input_tokens=input_token_count(texts, images), user_text=user_text, images=last_images,
                        tool_results=tool_results, tool=tool, json_schema=json_schema, thinking=thinking,
                        tool_schema=_followed_schemas(body.get("tools")).get(tool or ""))


def _output_config(value: object) -> dict[str, Any] | None:
    """The schema of a JSON output, if one is asked for."""
    if value is None:
        return None
    config = require_dict(value, "output_config")
    effort = config.get("effort")
    if effort is not None and effort not in EFFORTS:
        fail(f"Input should be {', '.join(EFFORTS)}", "output_config.effort")
    if config.get("format") is None:
        return None
    format_ = require_dict(config["format"], "output_config.format")
    if format_.get("type") != "json_schema":
        fail("Input tag found using 'type' does not match any of the expected tags: json_schema",
             "output_config.format.type")
    return _closed(require_dict(format_.get("schema"), "output_config.format.schema"),
                   "output_config.format.schema")


def _closed(schema: dict[str, Any], param: str) -> dict[str, Any]:
    """A schema of a JSON output or a strict tool, refused as Anthropic refuses it when one of its
    objects is not closed (`additionalProperties: false`)."""
    pending: list[Any] = [schema]
    while pending:
        node = pending.pop()
        if isinstance(node, list):
            pending.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        kinds = node.get("type")
        if (kinds == "object" or isinstance(kinds, list) and "object" in kinds) and \
                node.get("additionalProperties") is not False:
            fail("For 'object' type, 'additionalProperties' must be explicitly set to false", param)
        pending.extend(node.get(key) for key in ("items", "anyOf", "oneOf", "allOf", "prefixItems", "not"))
        for key in ("properties", "$defs", "definitions"):
            if isinstance(node.get(key), dict):
                pending.extend(node[key].values())
    return schema


def _thinking(body: dict[str, Any]) -> Literal["summarized", "omitted"] | None:
    """How a thinking block is shown, if the request thinks."""
    value = body.get("thinking")
    if value is None:
        return None
    thinking = require_dict(value, "thinking")
    kind = thinking.get("type")
    if kind not in THINKING:
        fail(f"Input tag '{kind}' found using 'type' does not match any of the expected tags: "
             f"{', '.join(THINKING)}", "thinking.type")
    display = thinking.get("display")
    if display is not None and (kind == "disabled" or display not in DISPLAYS):
        fail(f"Input should be {', '.join(DISPLAYS)}, and only with thinking enabled or adaptive",
             "thinking.display")
    if kind == "disabled":
        return None
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < MIN_BUDGET:
            fail(f"Input should be greater than or equal to {MIN_BUDGET}", "thinking.budget_tokens")
        if isinstance(body.get("tool_choice"), dict) and body["tool_choice"].get("type") in ("any", "tool"):
            fail("Thinking may not be enabled when tool_choice forces tool use.", "tool_choice")
    _sampling_with_thinking(body)
    return "omitted" if display == "omitted" else "summarized"


def check_budget(body: dict[str, Any], limit: int | None) -> None:
    """A thinking budget leaves room for the answer: a request to generate, unlike one to count
    tokens (which has no max_tokens), must set max_tokens above it."""
    thinking = body.get("thinking")
    budget = thinking.get("budget_tokens") if isinstance(thinking, dict) else None
    if isinstance(budget, int) and limit is not None and budget >= limit:
        fail("`max_tokens` must be greater than `thinking.budget_tokens`", "max_tokens")


def _sampling_with_thinking(body: dict[str, Any]) -> None:
    temperature, top_p = body.get("temperature"), body.get("top_p")
    if temperature is not None and temperature != 1:
        fail("`temperature` may only be set to 1 when thinking is enabled.", "temperature")
    if body.get("top_k") is not None:
        fail("`top_k` cannot be set when thinking is enabled.", "top_k")
    if isinstance(top_p, (int, float)) and top_p < 0.95:
        fail("`top_p` must be greater than or equal to 0.95 or unset when thinking is enabled.", "top_p")


def _block(raw: object, param: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    """Validate one content block of a type in `allowed`."""
    block = require_dict(raw, param)
    kind = block.get("type")
    if kind not in allowed:
        fail(f"Input tag '{kind}' found using 'type' does not match any of the expected tags: "
             f"{', '.join(allowed)}", f"{param}.type")
    if block.get("cache_control") is not None:
        require_dict(block["cache_control"], f"{param}.cache_control")
    if kind == "text":
        require_str(block.get("text"), f"{param}.text")
    elif kind == "image":
        source = require_dict(block.get("source"), f"{param}.source")
        if source.get("type") == "base64":
            if source.get("media_type") not in MEDIA_TYPES:
                fail(f"Input should be {', '.join(MEDIA_TYPES)}", f"{param}.source.media_type")
            require_base64(source.get("data"), f"{param}.source.data")
        elif source.get("type") == "url":
            require_http_url(source.get("url"), f"{param}.source.url")
        else:
            fail("Input tag found using 'type' does not match any of the expected tags: base64, url",
                 f"{param}.source.type")
    elif kind == "thinking":
        require_str(block.get("thinking"), f"{param}.thinking")
        require_str(block.get("signature"), f"{param}.signature")
    elif kind == "redacted_thinking":
        require_str(block.get("data"), f"{param}.data")
    elif kind == "tool_use":
        require_str(block.get("id"), f"{param}.id", nonempty=True)
        require_str(block.get("name"), f"{param}.name", nonempty=True)
        require_dict(block.get("input"), f"{param}.input")
    elif kind == "tool_result":
        require_str(block.get("tool_use_id"), f"{param}.tool_use_id", nonempty=True)
        content = block.get("content")
        if content is not None and not isinstance(content, str):
            if not isinstance(content, list):
                fail("must be a string or a list of content blocks", f"{param}.content")
            for k, inner in enumerate(content):
                # The real API takes images in tool results too; they count as input, not as text.
                _block(inner, f"{param}.content.{k}", ("text", "image"))
        optional_bool(block.get("is_error"), f"{param}.is_error")
    return block


def _result_text(block: dict[str, Any]) -> str:
    return content_text(block.get("content"))


def _result_images(block: dict[str, Any]) -> int:
    content = block.get("content")
    return sum(1 for b in content if b["type"] == "image") if isinstance(content, list) else 0


def _tools(value: object) -> list[str] | None:
    """The declared tool names, in order; None when the request declares none."""
    if value is None:
        return None
    if not isinstance(value, list):
        fail("must be a list of tools", "tools")
    names: list[str] = []
    for i, raw in enumerate(value):
        param = f"tools.{i}"
        tool = require_dict(raw, param)
        if tool.get("type") not in (None, "custom"):
            fail("only custom tools ({name, description, input_schema}) are simulated", f"{param}.type")
        name = require_tool_name(tool.get("name"), f"{param}.name")
        if name in names:
            fail("Tool names must be unique.", "tools")
        names.append(name)
        optional_str(tool.get("description"), f"{param}.description")
        require_dict(tool.get("input_schema"), f"{param}.input_schema")
        optional_bool(tool.get("strict"), f"{param}.strict")
        if tool.get("strict"):
            _closed(tool["input_schema"], f"{param}.input_schema")
        if tool.get("cache_control") is not None:
            require_dict(tool["cache_control"], f"{param}.cache_control")
    return names or None


def _followed_schemas(tools: Any) -> dict[str, dict[str, Any]]:
    """The input schema (already validated) of each tool whose call must match it, by name: a
    strict tool's, and one's that `{"query": ...}` would not fit (openai_request.takes_query)."""
    return {tool["name"]: tool["input_schema"] for tool in tools or ()
            if tool.get("strict") or not takes_query(tool["input_schema"])}


def _tool_choice(value: object, tools: list[str] | None) -> str | None:
    """The tool the reply calls: the named one, else the first declared; None for "none" or no tools."""
    if value is None:
        return tools[0] if tools else None
    choice = require_dict(value, "tool_choice")
    kind = choice.get("type")
    if kind not in CHOICES:
        fail(f"Input tag '{kind}' found using 'type' does not match any of the expected tags: "
             f"{', '.join(CHOICES)}", "tool_choice.type")
    if kind != "none":
        optional_bool(choice.get("disable_parallel_tool_use"), "tool_choice.disable_parallel_tool_use")
    if kind == "tool":
        name = require_str(choice.get("name"), "tool_choice.name")
        if name not in (tools or []):
            fail(f"Tool '{name}' not found in tools", "tool_choice.name")
        return name
    if kind == "any" and not tools:
        fail("tool_choice 'any' needs at least one tool in `tools`", "tool_choice")
    return None if kind == "none" or not tools else tools[0]
