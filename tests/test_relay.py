"""Relaying a same-family stream (answers.RelayedStream, http_api/v1/relay.py): what one
upstream read becomes, and what the relayed answer is billed at."""

from __future__ import annotations

import json

from ai_router.answers import Account, RelayedStream
from ai_router.config import settings_from_mapping
from ai_router.http_api.v1 import relay
from ai_router.metrics import Metrics
from ai_router.observe import RequestRecord
from ai_router.upstream_watch import Watchdog
from ai_router.wire import anthropic_messages, openai_chat

SETTINGS = settings_from_mapping({"providers": {"openai": {"default_model": "m"}}}, {})


def event(delta: dict[str, object]) -> bytes:
    chunk = {"object": "chat.completion.chunk", "model": "gpt-4o-mini", "choices": [{"delta": delta}]}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def relayed(reads: list[bytes], wire: object = openai_chat) -> RelayedStream:
    account = Account(provider="openai", model="gpt-4o-mini")
    watch = Watchdog().watch()
    return RelayedStream(200, "text/event-stream", iter(reads), lambda: None, watch, wire, account)  # type: ignore[arg-type]


def writes_for(reads: list[bytes]) -> list[bytes]:
    record = RequestRecord("openai", "rid", Metrics(SETTINGS))
    rewrite = relay.model_rewriter("openai")
    return list(relay._events(relayed(reads), rewrite, lambda error: b"", record))


def test_the_events_of_one_read_go_out_in_one_write_after_the_first_token() -> None:
    role, first, second, third = (
        event({"role": "assistant", "content": ""}),
        event({"content": "one"}),
        event({"content": "two"}),
        event({"content": "three"}),
    )

    writes = writes_for([role + first + second, third + b"data: [DONE]\n\n"])

    # The first token at once (with what came before it), the rest of its read in one write,
    # and the next read in one write: every event, in order, its model rewritten.
    assert len(writes) == 3
    assert b'"one"' in writes[0] and b'"two"' not in writes[0]
    assert b'"two"' in writes[1]
    assert b'"three"' in writes[2] and writes[2].endswith(b"data: [DONE]\n\n")
    relayed = b"".join(writes)
    assert relayed.count(b'"model":"openai/gpt-4o-mini"') == 4
    original = relayed.replace(b'"model":"openai/gpt-4o-mini"', b'"model": "gpt-4o-mini"')
    assert original == role + first + second + third + b"data: [DONE]\n\n"


def test_crlf_events_split_anywhere_between_reads_are_relayed_whole_with_lf_line_ends() -> None:
    wire = event({"content": "one"}) + event({"content": "two"}) + b"data: [DONE]\n\n"
    crlf = wire.replace(b"\n", b"\r\n")

    for cut in range(1, len(crlf)):
        relayed = b"".join(writes_for([crlf[:cut], crlf[cut:]]))
        assert relayed.replace(b'"model":"openai/gpt-4o-mini"', b'"model": "gpt-4o-mini"') == wire


def test_a_model_name_with_escapes_is_rewritten_to_the_same_name_under_its_provider() -> None:
    rewrite = relay.model_rewriter("openai")

    # JSON escapes and non-ASCII in the upstream's name: the client reads back the same name.
    document = b'{"id":"x","model": "gpt-\\u00e9\\"q\\"/\xc3\xa9","usage":{}}'
    rewritten = rewrite(document)

    assert json.loads(rewritten) == {"id": "x", "model": 'openai/gpt-\u00e9"q"/\u00e9', "usage": {}}
    # Only the first "model" of a document is the answer's own.
    nested = b'{"model":"a","choices":[{"model":"b"}]}'
    assert json.loads(rewrite(nested)) == {"model": "openai/a", "choices": [{"model": "b"}]}


def test_a_relayed_stream_counts_its_pieces_and_keeps_the_counts_it_was_given() -> None:
    anthropic_events = [
        b'event: message_start\ndata: {"type":"message_start","message":{"model":"c","usage":{"input_tokens":7,"output_tokens":1}}}\n\n',
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a"}}\n\n',
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"b"}}\n\n',
        # message_delta's counts are cumulative, and say nothing of the input here
        b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":2}}\n\n',
    ]
    stream = relayed([b"".join(anthropic_events)], anthropic_messages)

    batches = list(stream.events())

    assert stream.pieces == 2
    assert stream.usage_counts == (7, 2)
    assert stream.account.time_to_first_token is not None
    # The first piece closes the first batch, so it goes out at once.
    assert len(batches) == 2 and b'"text":"a"' in batches[0][-1]
