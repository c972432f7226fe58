"""The OpenAI Responses API as the simulator speaks it: POST /v1/responses (unary and SSE), and
the stored responses behind GET/DELETE /v1/responses/{id} and GET /v1/responses/{id}/input_items.

A request is validated the way the real API does it and read into the same `Conversation` the
Chat Completions endpoint builds, so the reply (reply.py) is the one the chat endpoint gives for
the same messages: `instructions` are a system message, `input` a string (one user message) or
items (messages, `function_call`, `function_call_output`, `reasoning`), and with
`previous_response_id` the stored conversation of that response comes first (its instructions
do not: the real API does not carry them over). Input tokens are the words of every text the
model reads (instructions, messages, call arguments, call outputs; not reasoning summaries) plus
one per image, as for chat.

Output items: a `reasoning` item first when the request asks for reasoning (a `reasoning` object
whose effort is not "none"; the model name plays no part, so a test decides): with `summary` set
it carries one summary_text, `Simulated thinking about: ...`, else an empty summary; its tokens
count as output (`reasoning_tokens`) and come off `max_output_tokens` first. Then one
`function_call` (call_id `call_sim_N`) or one `message` with one `output_text`. Function tools
are strict unless `strict: false`, as in the real API: a strict tool's arguments are an instance
of its parameters schema. `max_output_tokens` cuts the text: status `incomplete`, with
`incomplete_details.reason` "max_output_tokens" (the message is left out when the reasoning took
the whole limit, as the real API does). `usage.input_tokens_details.cached_tokens` is the input of
the previous response when one is continued (its prefix is what a real prompt cache would hold).

Not simulated, and refused with a 400 rather than ignored: `conversation`, `background`, hosted
tools' items and `item_reference` inputs (hosted tools may be declared; only functions are called).

Stored responses (`store`, default true) live in memory, the oldest dropped beyond
`MAX_STORED`; `POST /_sim/reset` forgets them. A mid-stream error fault sends the API's `error`
event; a cut or failed stream stores nothing.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from ai_router.wire import openai_responses as wire
from ai_router.wire import sse

from .conversation import (
    JSON_MODE_SCHEMA,
    BadRequest,
    Conversation,
    fail,
    input_token_count,
    optional_bool,
    optional_limit,
    optional_str,
    require_dict,
    require_list,
    require_model,
    require_object,
    require_str,
    require_tool_name,
    stream_flag,
)
from .openai_request import EFFORTS
from .reply import Piece, Reply, compose
from .script import Family
from .wire import GARBLED, OPENAI, Turn, Wire

RESPONSES_PATH = "/v1" + wire.PATH
MAX_STORED = 1000  # stored responses kept; beyond it the oldest go
SUMMARIES = ("auto", "concise", "detailed")
ROLES = ("user", "assistant", "system", "developer")
USER_PARTS = ("input_text", "input_image", "input_file")
ASSISTANT_PARTS = ("output_text", "refusal", "input_text")
TEXT_PARTS = ("input_text", "output_text")
ITEM_TYPES = ("message", "function_call", "function_call_output", "reasoning")
# The prefix of the id the simulator gives an input item that came without one.
ITEM_ID_PREFIXES = {"message": wire.MESSAGE_ID_PREFIX, "function_call": wire.FUNCTION_CALL_ID_PREFIX,
                    "function_call_output": "fco_", "reasoning": wire.REASONING_ID_PREFIX}
STORED_RE = re.compile(r"^/v1/responses/([^/]+)(/input_items)?$")
ENCRYPTED_REASONING = "reasoning.encrypted_content"


class CodedBadRequest(BadRequest):
    """A 400 that the real API marks with an error `code`."""

    def __init__(self, message: str, param: str | None, code: str) -> None:
        super().__init__(message, param)
        self.code = code


# ---- the store ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stored:
    response: dict[str, Any]  # the Response object as the create call answered it
    input_items: tuple[dict[str, Any], ...]  # this request's input, each item with its id
    context: tuple[dict[str, Any], ...]  # the whole conversation so far: what a continuation reads


@dataclass
class ResponseStore:
    """The stored responses, by id; shared by the handler threads."""

    limit: int = MAX_STORED
    _items: OrderedDict[str, Stored] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def put(self, stored: Stored) -> None:
        with self._lock:
            self._items[stored.response["id"]] = stored
            while len(self._items) > self.limit:
                self._items.popitem(last=False)

    def get(self, response_id: str) -> Stored | None:
        with self._lock:
            return self._items.get(response_id)

    def delete(self, response_id: str) -> bool:
        with self._lock:
            return self._items.pop(response_id, None) is not None

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def answer(self, method: str, target: str) -> tuple[int, dict[str, Any]]:
        """GET or DELETE /v1/responses/{id}, GET /v1/responses/{id}/input_items: (status, body)."""
        url = urlsplit(target)
        match = STORED_RE.match(url.path)
        assert match is not None  # stored_route let only these paths through
        response_id, listing = match.group(1), match.group(2)
        stored = self.get(response_id)
        if stored is None:
            return 404, OPENAI.error_body(404, f"Response with id '{response_id}' not found.")
        if listing:
            try:
                return 200, _item_list(stored.input_items, parse_qs(url.query))
            except BadRequest as exc:
                return 400, OPENAI.error_body(400, exc.message, exc.param)
        if method == "DELETE":
            self.delete(response_id)
            return 200, {"id": response_id, "object": "response.deleted", "deleted": True}
        return 200, stored.response


def stored_route(method: str, path: str) -> tuple[Wire, str] | None:
    """The route of a stored-response endpoint, or None for any other path."""
    match = STORED_RE.match(path)
    if match is None or (method, bool(match.group(2))) not in (("GET", False), ("DELETE", False), ("GET", True)):
        return None
    return OPENAI, "stored_response"



def _item_list(items: tuple[dict[str, Any], ...], query: dict[str, list[str]]) -> dict[str, Any]:
    """The API's list of input items: newest first unless `order=asc`, `limit` (1-100, default
    20) after the item `after`."""
    order = query.get("order", ["desc"])[-1]
    if order not in ("asc", "desc"):
        fail("must be one of asc, desc", "order")
    raw_limit = query.get("limit", ["20"])[-1]
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 100:
        fail("must be an integer between 1 and 100", "limit")
    ordered = list(items) if order == "asc" else list(reversed(items))
    after = query.get("after", [None])[-1]
    if after is not None:
        ids = [item["id"] for item in ordered]
        ordered = ordered[ids.index(after) + 1:] if after in ids else []
    page = ordered[:int(raw_limit)]
    return {"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None, "has_more": len(ordered) > len(page)}


# ---- reading a request --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResponsesRequest:
    """A validated create request: the conversation to answer, and what the Response echoes."""

    conversation: Conversation
    input_items: tuple[dict[str, Any], ...]  # normalized, an id only where the client gave one
    previous: Stored | None
    store: bool
    encrypted_reasoning: bool  # `include` asks for reasoning.encrypted_content
    echo: dict[str, Any]  # the request's settings as the Response object repeats them


def read_request(body: object, store: ResponseStore) -> ResponsesRequest:
    body = require_object(body)
    model = require_model(body)
    for unsupported in ("conversation", "background"):
        if body.get(unsupported):  # answered as if absent, a test would pass for the wrong reason
            fail("is not supported by the simulator", unsupported)
    items = _input(body.get("input"))
    instructions = body.get("instructions")
    optional_str(instructions, "instructions")
    limit = optional_limit(body, "max_output_tokens")
    stream = stream_flag(body)
    tools, strict_schemas, echoed_tools = _tools(body.get("tools"))
    tool = _tool_choice(body.get("tool_choice"), tools)
    optional_bool(body.get("parallel_tool_calls"), "parallel_tool_calls")
    saved = body.get("store", True)
    optional_bool(saved, "store")
    json_schema, text_format = _text(body.get("text"))
    thinking, reasoning = _reasoning(body.get("reasoning"))
    include = body.get("include") or []
    if not isinstance(include, list) or not all(isinstance(name, str) for name in include):
        fail("must be an array of strings", "include")

    previous_id = body.get("previous_response_id")
    previous = None
    if previous_id is not None:
        previous = store.get(require_str(previous_id, "previous_response_id"))
        if previous is None:
            raise CodedBadRequest(f"Previous response with id '{previous_id}' not found.",
                                  "previous_response_id", "previous_response_not_found")
    context = [*(previous.context if previous else ()), *items]
    _check_calls_answered(context)

    conversation = _conversation(context, instructions, model)
    conversation = replace(conversation, limit=limit, stream=stream, tool=tool, json_schema=json_schema,
                           tool_schema=strict_schemas.get(tool or ""), thinking=thinking)
    echo = {
        "instructions": instructions,
        "max_output_tokens": limit,
        "metadata": body.get("metadata") or {},
        "model": model,
        "parallel_tool_calls": body.get("parallel_tool_calls") is not False,
        "previous_response_id": previous_id,
        "reasoning": reasoning,
        "store": saved is not False,
        "temperature": body.get("temperature", 1.0),
        "text": {"format": text_format, "verbosity": "medium"},
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": echoed_tools,
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation") or "disabled",
        "user": body.get("user"),
    }
    return ResponsesRequest(conversation, tuple(items), previous, saved is not False,
                            ENCRYPTED_REASONING in include, echo)


def _input(value: object) -> list[dict[str, Any]]:
    """The request's input as normalized items (the shape `input_items` lists them in)."""
    if isinstance(value, str):
        return [_message("user", [{"type": "input_text", "text": value}])]
    items: list[dict[str, Any]] = []
    for i, raw in enumerate(require_list(value, "input")):
        param = f"input[{i}]"
        item = require_dict(raw, param)
        kind = item.get("type", "message")
        if kind not in ITEM_TYPES:
            fail(f"must be one of {', '.join(ITEM_TYPES)} (the simulator runs no hosted tools)", f"{param}.type")
        if kind == "message":
            items.append(_input_message(item, param))
        elif kind == "function_call":
            arguments = require_str(item.get("arguments"), f"{param}.arguments")
            try:
                json.loads(arguments)
            except ValueError:
                fail("must be a JSON string", f"{param}.arguments")
            items.append(_with_id(item, {
                "type": "function_call", "call_id": require_str(item.get("call_id"), f"{param}.call_id", nonempty=True),
                "name": require_str(item.get("name"), f"{param}.name", nonempty=True), "arguments": arguments,
                "status": "completed"}))
        elif kind == "function_call_output":
            call_id = require_str(item.get("call_id"), f"{param}.call_id", nonempty=True)
            output = item.get("output")
            if not isinstance(output, str):
                _parts(output, f"{param}.output", USER_PARTS)
            items.append(_with_id(item, {"type": "function_call_output", "call_id": call_id, "output": output,
                                         "status": "completed"}))
        else:  # reasoning: passed back from an earlier output; the model does not read it
            if not isinstance(item.get("summary", []), list):
                fail("must be an array", f"{param}.summary")
            items.append(dict(item))
    return items


def _input_message(item: dict[str, Any], param: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in ROLES:
        fail(f"must be one of {', '.join(ROLES)}", f"{param}.role")
    content = item.get("content")
    allowed = ASSISTANT_PARTS if role == "assistant" else USER_PARTS
    if isinstance(content, str):
        kind = "output_text" if role == "assistant" else "input_text"
        parts = [{"type": kind, "text": content, **({"annotations": []} if role == "assistant" else {})}]
    else:
        parts = _parts(content, f"{param}.content", allowed)
    return _with_id(item, _message(role, parts))


def _message(role: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "message", "role": role, "content": parts, "status": "completed"}


def _with_id(raw: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    return {"id": raw["id"], **item} if isinstance(raw.get("id"), str) else item


def _parts(content: object, param: str, allowed: tuple[str, ...]) -> list[dict[str, Any]]:
    parts = require_list(content, param)
    for j, part in enumerate(parts):
        part = require_dict(part, f"{param}[{j}]")
        kind = part.get("type")
        if kind not in allowed:
            fail(f"must be one of {', '.join(allowed)}", f"{param}[{j}].type")
        if kind in TEXT_PARTS:
            require_str(part.get("text"), f"{param}[{j}].text")
        elif kind == "refusal":
            require_str(part.get("refusal"), f"{param}[{j}].refusal")
        elif kind == "input_image" and part.get("image_url") is None and part.get("file_id") is None:
            fail("needs image_url or file_id", f"{param}[{j}]")
    return parts


def _text_of(content: object) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    return "".join(part["text"] for part in content if isinstance(part, dict)
                   and part.get("type") in TEXT_PARTS and isinstance(part.get("text"), str))


def _images(content: object) -> int:
    if not isinstance(content, list):
        return 0
    return sum(1 for part in content if isinstance(part, dict) and part.get("type") == "input_image")


def _check_calls_answered(context: list[dict[str, Any]]) -> None:
    """Each call output answers an earlier call, and each call is answered, as the API requires."""
    called: set[str] = set()
    answered: set[str] = set()
    for item in context:
        if item["type"] == "function_call":
            called.add(item["call_id"])
        elif item["type"] == "function_call_output":
            if item["call_id"] not in called:
                raise BadRequest(f"No tool call found for function call output with call_id {item['call_id']}.",
                                 "input")
            answered.add(item["call_id"])
    for item in context:
        if item["type"] == "function_call" and item["call_id"] not in answered:
            raise BadRequest(f"No tool output found for function call {item['call_id']}.", "input")


def _conversation(context: list[dict[str, Any]], instructions: str | None, model: str) -> Conversation:
    """What the reply depends on, as parse_openai reads it off the same conversation in messages."""
    texts = [instructions] if instructions else []
    images = 0
    for item in context:
        kind = item["type"]
        if kind == "message":
            texts.append(_text_of(item["content"]))
            images += _images(item["content"])
        elif kind == "function_call":
            texts.append(item["arguments"])
        elif kind == "function_call_output":
            texts.append(_text_of(item["output"]))
    user_text, last_images = "", 0
    for item in reversed(context):
        if item["type"] == "message" and item["role"] == "user":
            user_text, last_images = _text_of(item["content"]), _images(item["content"])
            break
    run: list[str] = []
    for item in reversed(context):
        if item["type"] != "function_call_output":
            break
        run.append(_text_of(item["output"]))
    return Conversation(model=model, limit=None, stops=(), stream=False, include_usage=False,
                        input_tokens=input_token_count(texts, images), user_text=user_text, images=last_images,
                        tool_results=tuple(reversed(run)) if run else None, tool=None)


def _tools(value: object) -> tuple[list[str] | None, dict[str, dict[str, Any]], list[Any]]:
    """The function tools' names (None: no tools), the schemas of the strict ones, and the
    tools as the Response repeats them."""
    if value is None or value == []:
        return None, {}, []
    names: list[str] = []
    schemas: dict[str, dict[str, Any]] = {}
    echoed: list[Any] = []
    for i, tool in enumerate(require_list(value, "tools")):
        param = f"tools[{i}]"
        tool = require_dict(tool, param)
        if tool.get("type") != "function":
            echoed.append(tool)  # a hosted tool: accepted, never called here
            continue
        name = require_tool_name(tool.get("name"), f"{param}.name")
        optional_str(tool.get("description"), f"{param}.description")
        parameters = tool.get("parameters")
        if parameters is not None:
            require_dict(parameters, f"{param}.parameters")
        optional_bool(tool.get("strict"), f"{param}.strict")
        strict = tool.get("strict") is not False  # the Responses API's default is strict
        if strict and parameters:
            schemas[name] = parameters
        names.append(name)
        echoed.append({"type": "function", "name": name, "description": tool.get("description"),
                       "parameters": parameters, "strict": strict})
    return names or None, schemas, echoed


def _tool_choice(value: object, tools: list[str] | None) -> str | None:
    """The function the reply calls: the named one, else the first; None for "none" or no functions."""
    if value is None:
        return tools[0] if tools else None
    if isinstance(value, str):
        if value not in ("none", "auto", "required"):
            fail("must be 'none', 'auto', 'required' or a named function", "tool_choice")
        return None if value == "none" or not tools else tools[0]
    choice = require_dict(value, "tool_choice")
    if choice.get("type") != "function":
        fail("must be 'function' (the simulator calls only function tools)", "tool_choice.type")
    name = require_str(choice.get("name"), "tool_choice.name")
    if name not in (tools or ()):
        raise BadRequest(f"Tool choice '{name}' not found in 'tools' parameter.", "tool_choice")
    return name


def _text(value: object) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The schema the answer must be an instance of (None for plain text), and the format echoed."""
    if value is None:
        return None, {"type": "text"}
    spec = require_dict(require_dict(value, "text").get("format") or {"type": "text"}, "text.format")
    kind = spec.get("type")
    if kind == "text":
        return None, spec
    if kind == "json_object":
        return JSON_MODE_SCHEMA, spec
    if kind != "json_schema":
        fail("must be one of text, json_object, json_schema", "text.format.type")
    require_tool_name(spec.get("name"), "text.format.name")
    optional_str(spec.get("description"), "text.format.description")
    optional_bool(spec.get("strict"), "text.format.strict")
    return require_dict(spec.get("schema"), "text.format.schema"), spec


def _reasoning(value: object) -> tuple[Literal["summarized", "omitted"] | None, dict[str, Any]]:
    """Whether the reply reasons, and with a summary shown; and the settings echoed."""
    if value is None:
        return None, {"effort": None, "summary": None}
    spec = require_dict(value, "reasoning")
    effort = spec.get("effort")
    if effort is not None and effort not in EFFORTS:
        fail(f"must be one of {', '.join(EFFORTS)}", "reasoning.effort")
    summary = spec.get("summary") or spec.get("generate_summary")
    if summary is not None and summary not in SUMMARIES:
        fail(f"must be one of {', '.join(SUMMARIES)}", "reasoning.summary")
    echo = {"effort": effort, "summary": summary}
    if effort == "none":
        return None, echo
    return ("summarized" if summary else "omitted"), echo


# ---- the wire -----------------------------------------------------------------------------------


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


class ResponsesWire:
    """The simulator's `Wire` for one POST /v1/responses: made per request, because a stream
    numbers its events and the answer is stored with the request it answers."""

    family: Family = "openai"
    request_id_header = OPENAI.request_id_header
    stream_error_status = 500

    def __init__(self, store: ResponseStore) -> None:
        self._store = store
        self._request: ResponsesRequest | None = None
        self._error_code: str | None = None
        self._sequence = 0
        self._ids: dict[str, str] = {}
        self._input_items: tuple[dict[str, Any], ...] = ()
        self._reasoning_open = False
        self._answer_open = False

    @property
    def request(self) -> ResponsesRequest:
        assert self._request is not None, "parse runs first"
        return self._request

    def parse(self, body: object) -> Reply:
        try:
            self._request = read_request(body, self._store)
        except CodedBadRequest as exc:
            self._error_code = exc.code
            raise
        return compose(self._request.conversation)

    def new_turn(self, reply: Reply, n: int) -> Turn:
        self._ids = {"message": f"{wire.MESSAGE_ID_PREFIX}sim_{n}", "call": f"{wire.FUNCTION_CALL_ID_PREFIX}sim_{n}",
                     "reasoning": f"{wire.REASONING_ID_PREFIX}sim_{n}"}
        self._input_items = tuple(
            item if "id" in item else {"id": f"{ITEM_ID_PREFIXES[item['type']]}sim_{n}_{i}", **item}
            for i, item in enumerate(self.request.input_items))
        return Turn(reply, f"{wire.RESPONSE_ID_PREFIX}sim_{n}", int(time.time()), f"call_sim_{n}")

    def error_body(self, status: int, message: str, param: str | None = None) -> dict[str, Any]:
        body = OPENAI.error_body(status, message, param)
        if self._error_code is not None:
            body["error"]["code"] = self._error_code
        return body

    # ---- the Response object ----

    def message(self, turn: Turn) -> dict[str, Any]:
        """The whole Response (and, with `store`, it is kept)."""
        return self._finish(turn)

    def _response(self, turn: Turn, status: str, output: list[dict[str, Any]],
                  usage: dict[str, Any] | None) -> dict[str, Any]:
        r = turn.reply
        incomplete = status == wire.INCOMPLETE
        return {
            "id": turn.id, "object": "response", "created_at": turn.created, "status": status,
            "background": False, "completed_at": None if status == wire.IN_PROGRESS else int(time.time()),
            "error": None, "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
            **self.request.echo, "model": r.model, "output": output, "max_tool_calls": None,
            "service_tier": "default", "usage": usage,
        }

    def _status(self, reply: Reply) -> str:
        return wire.INCOMPLETE if reply.finish == "max_tokens" else wire.COMPLETED

    def _usage(self, r: Reply) -> dict[str, Any]:
        previous = self.request.previous
        cached = previous.response["usage"]["input_tokens"] if previous and previous.response.get("usage") else 0
        return {"input_tokens": r.input_tokens,
                "input_tokens_details": {"cached_tokens": min(cached, r.input_tokens), "cache_write_tokens": 0},
                "output_tokens": r.output_tokens,
                "output_tokens_details": {"reasoning_tokens": r.thinking_tokens},
                "total_tokens": r.input_tokens + r.output_tokens}

    def _output(self, turn: Turn) -> list[dict[str, Any]]:
        r = turn.reply
        output = [] if r.thinking is None else [self._reasoning_item(turn, done=True)]
        if self._has_answer(r):
            output.append(self._answer_item(turn, done=True))
        return output

    @staticmethod
    def _has_answer(r: Reply) -> bool:
        # A text cut to nothing by the limit (the reasoning took it all) leaves no message.
        return r.tool_call is not None or bool(r.tokens) or r.finish != "max_tokens"

    def _reasoning_item(self, turn: Turn, *, done: bool) -> dict[str, Any]:
        r = turn.reply
        summary = [{"type": "summary_text", "text": r.thinking_text}] if done and r.thinking else []
        item: dict[str, Any] = {"id": self._ids["reasoning"], "type": "reasoning", "summary": summary}
        if self.request.encrypted_reasoning:
            item["encrypted_content"] = f"sim-encrypted-{turn.id}"
        return item

    def _answer_item(self, turn: Turn, *, done: bool) -> dict[str, Any]:
        r = turn.reply
        if r.tool_call is not None:
            return {"id": self._ids["call"], "type": "function_call", "status": "completed" if done else "in_progress",
                    "arguments": r.tool_call.arguments if done else "", "call_id": turn.tool_call_id,
                    "name": r.tool_call.name}
        status = ("incomplete" if r.finish == "max_tokens" else "completed") if done else "in_progress"
        return {"id": self._ids["message"], "type": "message", "status": status,
                "content": [self._text_part(r.text)] if done else [], "role": "assistant"}

    @staticmethod
    def _text_part(text: str) -> dict[str, Any]:
        return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}

    def _finish(self, turn: Turn) -> dict[str, Any]:
        response = self._response(turn, self._status(turn.reply), self._output(turn), self._usage(turn.reply))
        if self.request.store:
            previous = self.request.previous.context if self.request.previous else ()
            self._store.put(Stored(response, self._input_items,
                                   (*previous, *self._input_items, *response["output"])))
        return response

    # ---- the stream ----

    def _event(self, kind: str, fields: dict[str, Any]) -> bytes:
        data = {"type": kind, **fields, "sequence_number": self._sequence}
        self._sequence += 1
        return sse.frame(_dumps(data), kind)

    def _answer_index(self, r: Reply) -> int:
        return 0 if r.thinking is None else 1

    def stream_head(self, turn: Turn) -> list[bytes]:
        snapshot = self._response(turn, wire.IN_PROGRESS, [], None)
        events = [self._event(wire.RESPONSE_CREATED, {"response": snapshot}),
                  self._event(wire.RESPONSE_IN_PROGRESS, {"response": snapshot})]
        r = turn.reply
        if r.thinking is None:
            return events + self._open_answer(turn)
        events.append(self._event(wire.OUTPUT_ITEM_ADDED,
                                  {"item": self._reasoning_item(turn, done=False), "output_index": 0}))
        self._reasoning_open = True
        if r.thinking:
            events.append(self._event(wire.REASONING_SUMMARY_PART_ADDED, {
                **self._summary_place(), "part": {"type": "summary_text", "text": ""}}))
        else:
            events += self._close_reasoning(turn)  # no summary: the item is whole at once
        return events

    def _summary_place(self) -> dict[str, Any]:
        return {"item_id": self._ids["reasoning"], "output_index": 0, "summary_index": 0}

    def _close_reasoning(self, turn: Turn) -> list[bytes]:
        if not self._reasoning_open:
            return []
        self._reasoning_open = False
        events = []
        text = turn.reply.thinking_text
        if turn.reply.thinking:
            events = [self._event(wire.REASONING_SUMMARY_TEXT_DONE, {**self._summary_place(), "text": text}),
                      self._event(wire.REASONING_SUMMARY_PART_DONE, {
                          **self._summary_place(), "part": {"type": "summary_text", "text": text}})]
        events.append(self._event(wire.OUTPUT_ITEM_DONE,
                                  {"item": self._reasoning_item(turn, done=True), "output_index": 0}))
        return events

    def _open_answer(self, turn: Turn) -> list[bytes]:
        r = turn.reply
        self._answer_open = True
        index = self._answer_index(r)
        events = [self._event(wire.OUTPUT_ITEM_ADDED, {"item": self._answer_item(turn, done=False),
                                                       "output_index": index})]
        if r.tool_call is None:
            events.append(self._event(wire.CONTENT_PART_ADDED, {**self._text_place(r), "part": self._text_part("")}))
        return events

    def _text_place(self, r: Reply) -> dict[str, Any]:
        return {"item_id": self._ids["message"], "output_index": self._answer_index(r), "content_index": 0}

    def stream_token(self, turn: Turn, piece: Piece) -> bytes:
        r = turn.reply
        events = []
        if piece.opens:
            events = self._close_reasoning(turn) + self._open_answer(turn)
        if piece.kind == "thinking":
            events.append(self._event(wire.REASONING_SUMMARY_TEXT_DELTA, {**self._summary_place(), "delta": piece.text}))
        elif piece.kind == "arguments":
            events.append(self._event(wire.FUNCTION_CALL_ARGUMENTS_DELTA, {
                "item_id": self._ids["call"], "output_index": self._answer_index(r), "delta": piece.text}))
        else:
            events.append(self._event(wire.OUTPUT_TEXT_DELTA, {**self._text_place(r), "delta": piece.text,
                                                               "logprobs": []}))
        return b"".join(events)

    def stream_tail(self, turn: Turn) -> list[bytes]:
        r = turn.reply
        events = self._close_reasoning(turn)
        if self._has_answer(r):
            if not self._answer_open:
                events += self._open_answer(turn)
            index = self._answer_index(r)
            if r.tool_call is not None:
                events.append(self._event(wire.FUNCTION_CALL_ARGUMENTS_DONE, {
                    "item_id": self._ids["call"], "output_index": index, "arguments": r.tool_call.arguments}))
            else:
                events += [self._event(wire.OUTPUT_TEXT_DONE, {**self._text_place(r), "text": r.text, "logprobs": []}),
                           self._event(wire.CONTENT_PART_DONE, {**self._text_place(r),
                                                                "part": self._text_part(r.text)})]
            events.append(self._event(wire.OUTPUT_ITEM_DONE, {"item": self._answer_item(turn, done=True),
                                                              "output_index": index}))
        response = self._finish(turn)
        final = wire.RESPONSE_INCOMPLETE if response["status"] == wire.INCOMPLETE else wire.RESPONSE_COMPLETED
        events.append(self._event(final, {"response": response}))
        return events

    def stream_error(self, message: str | None) -> bytes:
        return self._event(wire.ERROR, {
            "code": "server_error", "message": message or "The server had an error while processing your request.",
            "param": None})

    def garbled_event(self) -> bytes:
        return sse.frame(GARBLED, wire.OUTPUT_TEXT_DELTA)
