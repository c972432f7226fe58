"""The OpenAI Responses API: POST /v1/responses, GET and DELETE /v1/responses/{id}, and
GET /v1/responses/{id}/input_items.

A create is one core call, as a chat completion is: to an OpenAI-family provider the body is
relayed, to another family it is translated through the router's types (openai_responses.py).
What the Responses API adds is conversation state. Every response the client asks to `store`
(the default) is kept in the router's state store, scoped to the key that made it, with the
whole conversation that led to it, so that `previous_response_id` continues it on any target:

- a response an OpenAI-family upstream answered (relayed) is also kept upstream under the same
  id: a continuation of it is relayed as it is, and the upstream brings its own state;
- one the router answered by translation exists only here: its conversation is written into the
  request, as `input` for a relay, as earlier turns for a translation.

Retrieve, delete and input items read the router's copy; deleting it leaves an upstream's copy
to the upstream's own retention.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal

import orjson
from flask import Blueprint, Response, jsonify, request

from ai_router.answers import ChatStream, Completion, Relayed, RelayedStream, json_of
from ai_router.call import Call, Relayable, estimate_from_text
from ai_router.errors import InvalidRequest, NotFound, RouterError
from ai_router.http_api import streaming
from ai_router.http_api.response_model import ResponseModel
from ai_router.http_api.request_body import read_json_object, require_string, validate
from ai_router.http_api.scoped import caller, keyed, metered
from ai_router.http_api.state import router
from ai_router.http_api.v1 import openai_responses, relay
from ai_router.native_request import check_max_tokens
from ai_router.response_store import ResponseStore, StoredResponse
from ai_router.scope import RequestScope
from ai_router.types import ChatChunk, ChatRequest
from ai_router.wire import openai_responses as wire

log = logging.getLogger(__name__)

blueprint = Blueprint("responses_api", __name__, url_prefix="/v1")

Item = Mapping[str, Any]


class PreviousResponseNotFound(InvalidRequest):
    code = "previous_response_not_found"  # OpenAI's code for it

    def __init__(self, response_id: str) -> None:
        super().__init__(f"Previous response with id '{response_id}' not found.", "previous_response_id")


@blueprint.post("/responses")
@metered("responses")
def create(scope: RequestScope) -> Response:
    data = read_json_object()
    scope.asked_for(str(data.get("model", "")))
    model = require_string(data, "model")
    owner = scope.caller.name if scope.caller is not None else ""
    store = scope.router.response_store()
    previous = _previous(store, data, owner)
    history = _conversation(previous)
    this_input = openai_responses.input_items(data)
    if data.get("store") is not False:
        # A conversation too large to keep is refused before an upstream is paid for its answer.
        store.check_fits((*history, *this_input))
    parsed: list[openai_responses.ResponsesRequest] = []

    def validated() -> openai_responses.ResponsesRequest:
        if not parsed:
            parsed.append(validate(openai_responses.ResponsesRequest, data))
        return parsed[0]

    def chat(provider: str) -> ChatRequest:
        return openai_responses.to_chat_request(validated(), history, provider, scope.request_id)

    answer = scope.call(
        Call(
            model=model,
            chat=chat,
            stream=data.get("stream") is True,
            request_id=scope.request_id,
            input_tokens=_input_estimate(history, data),
            max_output=_max_output(data),
            relay=Relayable(wire.FAMILY, _relayed_body(data, previous, history), "responses"),
        )
    )
    keep = _keeper(store, data, owner, (*history, *this_input))
    if isinstance(answer, Completion):
        response_id, created_at = _new_id(), int(time.time())
        reply = answer.response
        rendered = openai_responses.render(
            reply, _label(reply.provider, reply.model), response_id, validated(), created_at
        )
        keep(rendered, reply.provider, False)
        return jsonify(rendered)
    if isinstance(answer, ChatStream):
        return _translated_stream(answer, validated(), scope, keep)
    echo = _previous_echo(data, previous)
    if isinstance(answer, Relayed):
        def keep_body(body: bytes) -> bytes:
            body = echo(body)
            kept = json_of(body)
            if answer.status == 200 and isinstance(kept, dict):
                keep(kept, answer.account.provider, True)
            return body

        return relay.whole(answer, keep_body)
    return _relayed_stream(answer, scope, keep, echo)


class DeletedResponse(ResponseModel):
    id: str
    object: Literal["response.deleted"] = "response.deleted"
    deleted: Literal[True] = True


class InputItemList(ResponseModel):
    object: Literal["list"] = "list"
    data: list[dict[str, Any]]  # the items as the client sent them, each with an id
    first_id: str | None
    last_id: str | None
    has_more: bool


@blueprint.get("/responses/<response_id>")
@keyed
def retrieve(response_id: str) -> Response:
    return jsonify(dict(_stored(response_id).response))


@blueprint.delete("/responses/<response_id>")
@keyed
def delete(response_id: str) -> Response:
    if not router().response_store().delete(response_id, _owner()):
        raise _not_found(response_id)
    return jsonify(DeletedResponse(id=response_id).to_json())


@blueprint.get("/responses/<response_id>/input_items")
@keyed
def input_items(response_id: str) -> Response:
    """The conversation's input items up to the response, newest first unless `order=asc`,
    `limit` (1-100, 20) at a time after the item `after`."""
    items = list(_stored(response_id).context)
    order = request.args.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest(f"order must be 'asc' or 'desc'; got {order!r}", param="order")
    if order == "desc":
        items.reverse()
    limit = _limit(request.args.get("limit", "20"))
    after = request.args.get("after")
    if after is not None:
        ids = [item.get("id") for item in items]
        if after not in ids:
            raise InvalidRequest(f"no input item {after!r} in response {response_id!r}", param="after")
        items = items[ids.index(after) + 1 :]
    page = [dict(item) for item in items[:limit]]
    listed = InputItemList(
        data=page,
        first_id=page[0].get("id") if page else None,
        last_id=page[-1].get("id") if page else None,
        has_more=len(items) > limit,
    )
    return jsonify(listed.to_json())


# --- conversation state --------------------------------------------------------------------------


def _previous(store: ResponseStore, data: Mapping[str, Any], owner: str) -> StoredResponse | None:
    previous_id = data.get("previous_response_id")
    if previous_id is None:
        return None
    if not isinstance(previous_id, str) or not previous_id:
        raise InvalidRequest("previous_response_id must be a non-empty string", "previous_response_id")
    found = store.get(previous_id, owner)
    if found is None:
        raise PreviousResponseNotFound(previous_id)
    return found


def _conversation(previous: StoredResponse | None) -> tuple[Item, ...]:
    """The items that a continuation of `previous` starts from: its conversation's input, then
    its output."""
    if previous is None:
        return ()
    output = previous.response.get("output")
    return (*previous.context, *(output if isinstance(output, list) else ()))


def _relayed_body(
    data: Mapping[str, Any], previous: StoredResponse | None, history: Sequence[Item]
) -> Mapping[str, Any]:
    """The body an OpenAI-family upstream gets: as it came, unless it continues a response only
    the router has, whose conversation then goes in as input."""
    if not _carried(previous):
        return data
    body = {name: value for name, value in data.items() if name != "previous_response_id"}
    given = data.get("input")
    this_input = [{"role": "user", "content": given}] if isinstance(given, str) else given
    body["input"] = [*_replayable(history), *(this_input or [])]
    return body


def _carried(previous: StoredResponse | None) -> bool:
    """Whether a relay carries the conversation itself: the upstream does not have it."""
    return previous is not None and not previous.relayed


def _replayable(items: Sequence[Item]) -> list[Item]:
    """Earlier items as input for an upstream that has never seen them: without the ids the
    router gave them (an upstream reads an id as a reference to an item it stored), and without
    reasoning, which an upstream accepts back only as its own."""
    return [
        {name: value for name, value in item.items() if name != "id"}
        for item in items
        if item.get("type") != "reasoning"
    ]


_NO_PREVIOUS = re.compile(rb'"previous_response_id"\s*:\s*null')


def _previous_echo(data: Mapping[str, Any], previous: StoredResponse | None) -> relay.Document:
    """A relay that carried the conversation as input gets an answer continuing nothing: it
    names the previous response the client gave, as one continued upstream would."""
    if not _carried(previous):
        return lambda document: document
    named = b'"previous_response_id":' + orjson.dumps(data["previous_response_id"])
    return lambda document: _NO_PREVIOUS.sub(named, document, count=1)


Keeper = Callable[[Mapping[str, Any], str, bool], None]


def _keeper(store: ResponseStore, data: Mapping[str, Any], owner: str, context: Sequence[Item]) -> Keeper:
    """Keeps a finished response (whole: `completed` or `incomplete`) when the client asked to
    store it. A store that fails then is logged: the answer has been made, and goes out."""

    def keep(response: Mapping[str, Any], provider: str, relayed: bool) -> None:
        if data.get("store") is False or not isinstance(response.get("id"), str):
            return
        stored = StoredResponse(
            id=response["id"],
            owner=owner,
            provider=provider,
            relayed=relayed,
            response=response,
            context=tuple(context),
            created_at=time.time(),
        )
        try:
            store.put(stored)
        except RouterError as error:
            log.error("response %s not stored: %s", stored.id, error.message)

    return keep


def _stored(response_id: str) -> StoredResponse:
    found = router().response_store().get(response_id, _owner())
    if found is None:
        raise _not_found(response_id)
    return found


def _owner() -> str:
    key = caller()
    return key.name if key is not None else ""


def _not_found(response_id: str) -> NotFound:
    return NotFound(f"Response with id '{response_id}' not found.", "response_id")


# --- streams ---------------------------------------------------------------------------------------


def _translated_stream(
    stream: ChatStream,
    body: openai_responses.ResponsesRequest,
    scope: RequestScope,
    keep: Keeper,
) -> Response:
    request = stream.request
    encoder = openai_responses.EventStream(
        body, _label(request.provider, request.model), _new_id(), int(time.time())
    )

    def encode(chunk: ChatChunk) -> list[bytes]:
        events = list(encoder.encode(chunk))
        # Kept before its last event goes out: a client that continues the conversation as
        # soon as it has read the stream finds it.
        if chunk.is_final and encoder.response is not None:
            keep(encoder.response, request.provider, False)
        return events

    return streaming.response(
        stream, encode, openai_responses.error_event, scope, head=encoder.head, done=encoder.done
    )


def _relayed_stream(
    answer: RelayedStream, scope: RequestScope, keep: Keeper, echo: relay.Document
) -> Response:
    def keep_final(event: bytes) -> bytes:
        event = echo(event)
        # Only a final event carries the whole response; the deltas are not parsed. It is kept
        # before it goes out, as a translated one is.
        if any(name.encode() in event for name in wire.FINAL_EVENTS):
            document = json_of(event)
            response = document.get("response") if isinstance(document, dict) else None
            if isinstance(response, dict) and response.get("status") != wire.FAILED:
                keep(response, answer.account.provider, True)
        return event

    return relay.stream(answer, openai_responses.error_event, scope.record, keep_final)


# --- reading the body ------------------------------------------------------------------------------


def _input_estimate(history: Sequence[Item], data: Mapping[str, Any]) -> int:
    text = orjson.dumps([list(history), data.get("input", ""), data.get("instructions", "")]).decode()
    return estimate_from_text(text)


def _max_output(data: Mapping[str, Any]) -> int | None:
    value = data.get("max_output_tokens")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidRequest(f"max_output_tokens must be a whole number; got {value!r}", "max_output_tokens")
    return check_max_tokens(value, "max_output_tokens")


def _limit(given: str) -> int:
    try:
        limit = int(given)
    except ValueError:
        limit = 0
    if not 1 <= limit <= 100:
        raise InvalidRequest(f"limit must be a whole number from 1 to 100; got {given!r}", "limit")
    return limit


def _new_id() -> str:
    return wire.RESPONSE_ID_PREFIX + uuid.uuid4().hex


def _label(provider: str, model: str) -> str:
    return f"{provider}/{model}"
