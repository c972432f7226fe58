"""Server-sent events: the framing shared by both families' streams.

An event is lines of `field: value`, ended by a blank line; a `data` field may repeat and its
values join with newlines; lines starting with `:` are comments (the WHATWG HTML standard,
"Server-sent events"). Upstreams end lines with \n or \r\n.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

DONE = b"data: [DONE]\n\n"
DONE_DATA = b"[DONE]"


def frame(data: bytes, event: str = "") -> bytes:
    """One event: `data` (one line of JSON), named by `event` when it is given."""
    if event:
        return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"
    return b"data: " + data + b"\n\n"


def split_events(pending: bytes) -> tuple[list[bytes], bytes]:
    """The complete events at the start of `pending`, without the blank lines that end them,
    and the incomplete rest. Line ends come out as \n. bytes.split, not a regular expression:
    it is on every relayed stream's path to its first token."""
    if b"\r" in pending:
        # A lone \r at the end may be half of a \r\n: it is fixed when the rest arrives.
        pending = pending.replace(b"\r\n", b"\n")
    *events, rest = pending.split(b"\n\n")
    return events, rest


def data_of(event: bytes) -> bytes | None:
    """The event's data (its data lines joined by \n), or None when it has none."""
    lines = [line[5:] for line in event.split(b"\n") if line.startswith(b"data:")]
    if not lines:
        return None
    return b"\n".join(line[1:] if line.startswith(b" ") else line for line in lines)


def event_data(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The data of each event in a byte stream read in arbitrary pieces; events without data
    (comments, pings without data) are skipped, and a last event without its blank line kept."""
    pending = b""
    for chunk in chunks:
        events, pending = split_events(pending + chunk)
        for event in events:
            data = data_of(event)
            if data is not None:
                yield data
    data = data_of(pending)
    if data is not None:
        yield data
