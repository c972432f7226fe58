"""What the core's one call returns: the answer, and the account of what the call did.

`Router.call` returns one of four answers, each carrying its `Account` (who answered, the
attempts, the usage and its cost):

    Completion      a whole answer in the router's types (a target of another family)
    ChatStream      a stream of chunks in the router's types
    Relayed         a whole answer in the client's own wire format, passed through
    RelayedStream   a stream in the client's own wire format, passed through event by event

A whole answer is settled (its cost booked) before it is returned; a stream when it closes,
with the usage it relayed until then. The account is complete once the answer is: a front door
reads it when the answer has been sent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import orjson

from ai_router.types import ChatChunk, ChatRequest, ChatResponse, Usage
from ai_router.upstream_watch import Watch
from ai_router.wire import RelayedFormat, sse


@dataclass(slots=True)  # one per request, and an open stream holds it: kept small
class Account:
    """What one call did; filled in by the core as it goes."""

    started: float = field(default_factory=time.monotonic)
    key: str = ""  # the router key's name (never the key)
    alias: str = ""
    provider: str = ""  # the target tried last, or that answered
    model: str = ""
    attempts: list[str] = field(default_factory=list)  # failed attempts, key-free
    time_to_first_token: float | None = None
    usage: Usage | None = None
    cost_usd: float | None = None

    def answered_by(self, provider: str, model: str) -> None:
        self.provider, self.model = provider, model

    def first_token(self) -> None:
        if self.time_to_first_token is None:
            self.time_to_first_token = time.monotonic() - self.started

    def settled(self, usage: Usage | None, cost: float) -> None:
        if usage is not None:
            self.usage = usage
        self.cost_usd = round(cost, 10)


class _Stream:
    """What both kinds of stream do: close once (running their callbacks), and be cut off from
    any thread when their client goes away."""

    __slots__ = ("account", "_watch", "_callbacks", "_closed", "_lock")

    def __init__(self, watch: Watch, account: Account) -> None:
        self.account = account
        self._watch = watch
        self._callbacks: list[Callable[[], None]] = []
        self._closed = False
        self._lock = threading.Lock()

    def on_close(self, callback: Callable[[], None]) -> None:
        """Run `callback` too once the stream is closed."""
        self._callbacks.append(callback)

    def abort(self) -> None:
        """Cut the upstream off now, from any thread, even while another is reading it (the
        client went away); the reader then sees the stream end with Cancelled."""
        self._watch.cancel()

    def close(self) -> None:
        """Stop early, from the thread reading, or after the end: closes the upstream answer,
        then runs every callback (even after one fails; the first failure is raised).
        Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        callbacks = [self._close_upstream, *self._callbacks]
        failure: BaseException | None = None
        for callback in callbacks:
            try:
                callback()
            except BaseException as exc:
                failure = failure or exc
        if failure is not None:
            raise failure

    def _close_upstream(self) -> None:
        raise NotImplementedError


@dataclass
class Completion:
    response: ChatResponse
    account: Account


class ChatStream(_Stream):
    """A stream of chunks and the resolved request it answers (provider, model filled in).
    Its first chunk has already arrived. Closing it, or reading it to the end, closes the
    upstream answer, ends its lease on the target and settles its cost."""

    __slots__ = ("request", "_first", "_rest", "relayed_tokens", "usage")

    def __init__(
        self,
        request: ChatRequest,
        first: ChatChunk,
        rest: Iterator[ChatChunk],
        watch: Watch,
        account: Account,
    ) -> None:
        super().__init__(watch, account)
        self.request = request
        self._first: ChatChunk | None = first
        self._rest = rest
        self.relayed_tokens = 0  # text and tool-call pieces read so far, about one token each
        self.usage: Usage | None = None

    def __iter__(self) -> Iterator[ChatChunk]:
        return self

    def __next__(self) -> ChatChunk:
        first, self._first = self._first, None
        if first is not None:
            return self._count(first)
        try:
            chunk = next(self._rest)
        except BaseException:
            self.close()
            raise
        return self._count(chunk)

    def _count(self, chunk: ChatChunk) -> ChatChunk:
        if chunk.delta or chunk.reasoning or chunk.tool_call is not None:
            self.relayed_tokens += 1
        if chunk.usage is not None:
            self.usage = chunk.usage
        return chunk

    def _close_upstream(self) -> None:
        close = getattr(self._rest, "close", None)
        if close is not None:
            close()


@dataclass
class Relayed:
    """A whole answer in the client's own wire format: the upstream's status, type and body."""

    status: int
    content_type: str
    body: bytes
    usage_counts: tuple[int | None, int | None] | None  # (input, output), where it gave them
    account: Account


class RelayedStream(_Stream):
    """A stream in the client's own wire format, passed through as it arrives: each item is the
    complete events of one upstream read (each ended by its blank line; line ends \n), cut
    after the first that carries content, so that it goes out at once. The usage is read from
    the events that carry one, and the pieces of content are counted, to bill a stream that ends
    without the upstream's count."""

    __slots__ = ("status", "content_type", "usage_counts", "pieces", "_chunks", "_close_chunks", "_wire")

    def __init__(
        self,
        status: int,
        content_type: str,
        chunks: Iterator[bytes],
        close_upstream: Callable[[], None],
        watch: Watch,
        wire: RelayedFormat,
        account: Account,
    ) -> None:
        super().__init__(watch, account)
        self.status = status
        self.content_type = content_type
        self.usage_counts: tuple[int | None, int | None] = (None, None)
        self.pieces = 0
        self._chunks = chunks
        self._close_chunks = close_upstream
        self._wire = wire

    def events(self) -> Iterator[list[bytes]]:
        """The events, in batches as above. Raises the router's errors."""
        pending = b""
        for data in self._chunks:
            events, pending = sse.split_events(pending + data)
            batch: list[bytes] = []
            for event in events:
                self._note_usage(event)
                batch.append(event + b"\n\n")
                if self._wire.CONTENT_PIECE.search(event):
                    self.pieces += 1
                    if self.pieces == 1:
                        self.account.first_token()
                        yield batch
                        batch = []
            if batch:
                yield batch
        if pending:
            yield [pending]  # a last event the upstream did not end: passed on as it came

    def _note_usage(self, event: bytes) -> None:
        if b'"usage"' not in event:
            return
        counts = self._wire.usage_counts(json_of(event))
        if counts is not None:
            known_in, known_out = self.usage_counts
            self.usage_counts = (
                counts[0] if counts[0] is not None else known_in,
                counts[1] if counts[1] is not None else known_out,
            )

    def _close_upstream(self) -> None:
        self._close_chunks()


Answer = Completion | ChatStream | Relayed | RelayedStream


def json_of(event: bytes) -> object:
    """The JSON document in an event or body (from its first `{`), or None."""
    start = event.find(b"{")
    try:
        return orjson.loads(event[start:]) if start >= 0 else None
    except orjson.JSONDecodeError:
        return None
