"""An in-process upstream: a transport that hands each request to a function instead of a socket.

For tests of providers, translators and the core without a server (httpx's MockTransport is the
model). `FakeUpstream(handler).connect` stands where `transport_for` does; `handler` gets each
request, its URL and every header it would have carried, and returns a `FakeAnswer` or raises what
a real transport raises (OSError, TimeoutError, http.client.HTTPException).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ai_router.providers.transport import (
    Answer,
    HTTPConnectionClosed,
    Timeout,
    Transport,
)
from ai_router.wire import sse


@dataclass(frozen=True)
class FakeRequest:
    url: str
    headers: Mapping[str, str]
    body: bytes
    timeout: Timeout
    stream: bool

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class FakeAnswer:
    """An answer: its body whole, or in `pieces` as a stream's reads would bring them. With
    `cut_after` pieces the connection drops, as an upstream that dies mid-answer."""

    status_code: int = 200
    pieces: Sequence[bytes] = ()
    headers: Sequence[tuple[str, str]] = ()
    content_type: str = "application/json"
    cut_after: int | None = None
    closed: bool = field(default=False, init=False)
    _shut_down: bool = field(default=False, init=False)

    @classmethod
    def of_json(cls, document: Any, status: int = 200, **headers: str) -> FakeAnswer:
        return cls(status, (json.dumps(document).encode(),), tuple(headers.items()))

    @classmethod
    def of_events(cls, *events: tuple[str, Any] | bytes) -> FakeAnswer:
        """A stream: `(event name or "", JSON data)` pairs, or raw bytes, one read each."""
        pieces = [
            event if isinstance(event, bytes) else sse.frame(json.dumps(event[1]).encode(), event[0])
            for event in events
        ]
        return cls(200, pieces, content_type="text/event-stream")

    @property
    def content(self) -> bytes:
        return b"".join(self.iter_bytes())

    def header_items(self) -> list[tuple[str, str]]:
        return [("content-type", self.content_type), *self.headers]

    def iter_bytes(self) -> Iterator[bytes]:
        for index, piece in enumerate(self.pieces):
            if self._shut_down or index == self.cut_after:
                raise HTTPConnectionClosed("the upstream closed the connection mid-answer")
            yield piece

    def shut_down(self) -> None:
        self._shut_down = True

    def close(self) -> None:
        self.closed = True


Handler = Callable[[FakeRequest], FakeAnswer]


class FakeUpstream:
    """Every request any of its transports sent, and the function that answers them."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[FakeRequest] = []
        self.answers: list[FakeAnswer] = []

    def connect(self, url: str, headers: Mapping[str, str]) -> Transport:
        return _FakeTransport(self, url, dict(headers))


class _FakeTransport:
    def __init__(self, upstream: FakeUpstream, url: str, headers: dict[str, str]) -> None:
        self._upstream = upstream
        self._url = url
        self._headers = headers

    def post(
        self, body: bytes, headers: Mapping[str, str], timeout: Timeout, stream: bool
    ) -> Answer:
        request = FakeRequest(self._url, {**self._headers, **headers}, body, timeout, stream)
        self._upstream.requests.append(request)
        answer = self._upstream.handler(request)
        self._upstream.answers.append(answer)
        return answer

    def close(self) -> None:
        pass
