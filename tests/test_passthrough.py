"""Relaying a same-family stream (http_api/passthrough.py): what one upstream read becomes."""

from __future__ import annotations

import json

from ai_router.http_api import passthrough
from ai_router.providers.base import RelayResponse


class Answer:
    def close(self) -> None:
        pass


def event(delta: dict[str, object]) -> bytes:
    chunk = {"object": "chat.completion.chunk", "model": "gpt-4o-mini", "choices": [{"delta": delta}]}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def writes_for(reads: list[bytes]) -> list[bytes]:
    relay = RelayResponse(200, "text/event-stream", iter(reads), Answer())  # type: ignore[arg-type]
    rewrite = passthrough._model_rewriter("openai")
    return list(passthrough._events(relay, rewrite, lambda error: b"", None))


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
    rewrite = passthrough._model_rewriter("openai")

    # JSON escapes and non-ASCII in the upstream's name: the client reads back the same name.
    document = b'{"id":"x","model": "gpt-\\u00e9\\"q\\"/\xc3\xa9","usage":{}}'
    rewritten = rewrite(document)

    assert json.loads(rewritten) == {"id": "x", "model": 'openai/gpt-\u00e9"q"/\u00e9', "usage": {}}
    # Only the first "model" of a document is the answer's own.
    nested = b'{"model":"a","choices":[{"model":"b"}]}'
    assert json.loads(rewrite(nested)) == {"model": "openai/a", "choices": [{"model": "b"}]}
