"""Process-wide logging: one JSON object per line, carrying the request id where there is one.

Every entry point (the gRPC server, gunicorn's master and workers, the CLI) logs through here, so
a log pipeline gets one format from every process. The request id travels in a context variable
(per thread in the gRPC server, per greenlet under gevent), set by the front door. Nothing here
ever logs a prompt, a completion or a key: callers pass only what the per-request line needs.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from collections import deque
from contextvars import ContextVar
from typing import Any, TextIO

import orjson

from ai_router import batches

request_id_var: ContextVar[str] = ContextVar("request_id", default="")

# `extra={FIELDS: {...}}`: the line's fields as one dict, for a line with many (the request's
# own): logging copies each key of `extra` onto the record one by one, checking each.
FIELDS = "fields"


# Ids made ahead, from one read of the kernel's generator rather than one read (a system call)
# per request. A deque: taking one is atomic, so two threads never take the same.
_ID_DIGITS = 32
_ids_ahead: deque[str] = deque()


def new_request_id() -> str:
    """An id for a request that came without one: 32 random hex digits, like a uuid4's hex
    (uuid.uuid4().hex costs four times as much: a UUID object made only to be printed)."""
    try:
        return _ids_ahead.popleft()
    except IndexError:
        digits = secrets.token_hex(_ID_DIGITS // 2 * 256)
        _ids_ahead.extend(digits[start : start + _ID_DIGITS] for start in range(_ID_DIGITS, len(digits), _ID_DIGITS))
        return digits[:_ID_DIGITS]


# A forked child (a gunicorn worker) must not hand out the ids its parent made ahead.
os.register_at_fork(after_in_child=_ids_ahead.clear)


# A log record gathers what the JSON line below never shows, at a cost: the caller's file and
# line (a walk up the stack), and the thread's and process's names, where under gevent every
# request is a greenlet of its own that `threading.current_thread()` first makes a thread object
# for. The logging HOWTO's "Optimization" section names these switches.
logging._srcfile = None
logging.logThreads = False
logging.logMultiprocessing = False

# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}


class _Stamps:
    """Times as the lines show them, the second formatted once a second rather than once a line.
    The pair is replaced whole, so that a thread never reads one second's text with another's."""

    def __init__(self) -> None:
        self._second: tuple[int, str] = (-1, "")

    def of(self, created: float) -> str:
        second = int(created)
        cached = self._second
        if cached[0] != second:
            cached = self._second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
        return f"{cached[1]}.{int((created - second) * 1000):03d}Z"


_stamps = _Stamps()


def _entry(created: float, level: str, logger: str, pid: int | None, message: str) -> dict[str, Any]:
    return {"time": _stamps.of(created), "level": level, "logger": logger, "pid": pid, "message": message}


def _spread(entry: dict[str, Any], fields: dict[str, Any], request_id: str) -> None:
    """A line's fields, after the request id the line was found to have (or none)."""
    entry.update(fields)
    if request_id:  # the one found by the caller, never an empty one of the fields'
        entry["request_id"] = request_id
    else:
        entry.pop("request_id", None)


def _dumps(entry: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(entry, default=str, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # what orjson refuses (an integer over 64 bits), json takes
        return json.dumps(entry, default=str, ensure_ascii=False).encode()


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = _entry(record.created, record.levelname.lower(), record.name, record.process, record.getMessage())
        attributes = record.__dict__
        fields = attributes.get(FIELDS)
        request_id = (fields or attributes).get("request_id") or request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        if fields is not None:
            _spread(entry, fields, request_id)
        for key, value in attributes.items():
            if key not in _STANDARD and key != "request_id" and key != FIELDS:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _dumps(entry).decode()


request_log = logging.getLogger("ai_router.request")
# The handler configure_logging installed, whose stream log_request writes to itself.
_stderr: logging.StreamHandler | None = None  # type: ignore[type-arg]
_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


def log_request(fields: dict[str, Any], at: float | None = None) -> None:
    """A request's own line (observe.py): what `request_log.info("request", extra={FIELDS:
    fields})` writes through JsonFormatter, which is what happens where configure_logging has
    not set up this process's logging. Where it has, the line waits for the process's next batch
    (batches.py), which builds the lines without LogRecords or a formatter and writes them in
    one write, under the handler's lock so that they never interleave with other lines. Stamped
    `at` (a time.time(); now if not given), when the request finished; the line written through
    logging is stamped when it is written."""
    if not request_log.isEnabledFor(logging.INFO):
        return
    handler = _stderr
    if handler is None or _descriptor(handler) is None:
        request_log.info("request", extra={FIELDS: fields})
        return
    created = time.time() if at is None else at
    _request_lines.add((handler, created, fields.get("request_id") or request_id_var.get(), fields))


MAX_PENDING_LINES = 4096  # batches.Queue's limit
LINES_PER_WRITE = 64  # a line is cheaper than a report: a slice of lines takes as long as one of reports

# A request line waiting for its batch: its handler, time, request id and fields.
_Line = tuple[logging.StreamHandler, float, str, dict[str, Any]]  # type: ignore[type-arg]


def _write_lines(waiting: list[_Line]) -> None:
    """A batch of request lines, in one write to each handler's stream."""
    lines: dict[logging.StreamHandler, list[bytes]] = {}  # type: ignore[type-arg]
    for handler, created, request_id, fields in waiting:
        entry = _entry(created, "info", request_log.name, _pid, "request")
        if request_id:
            entry["request_id"] = request_id
        _spread(entry, fields, request_id)
        lines.setdefault(handler, []).append(_dumps(entry))
    for handler, written in lines.items():
        _write(handler, b"\n".join(written) + b"\n")


def _write(handler: logging.StreamHandler, text: bytes) -> None:  # type: ignore[type-arg]
    """`text` to the file under `handler`'s stream, in one write unless it is long."""
    descriptor = _descriptor(handler)
    if descriptor is None:
        return  # the stream was closed since: the lines are lost, as logging would lose them
    remaining = memoryview(text)
    handler.acquire()
    try:
        while remaining:
            remaining = remaining[os.write(descriptor, remaining):]
    except OSError:
        pass  # stderr closed or gone: the lines are lost, as logging would lose them; no request is
    finally:
        handler.release()


_request_lines: batches.Queue[_Line] = batches.Queue(_write_lines, MAX_PENDING_LINES, LINES_PER_WRITE)
batches.watch(_request_lines)


def _descriptor(handler: logging.StreamHandler | None) -> int | None:  # type: ignore[type-arg]
    """The file descriptor under the handler's stream; None for a stream without one (an
    in-memory stream, a test's capture), whose own write logging then uses."""
    if handler is None:
        return None
    try:
        descriptor: int = handler.stream.fileno()
    except (OSError, ValueError):  # io.UnsupportedOperation is both
        return None
    return descriptor


def configure_logging(stream: TextIO | None = None) -> None:
    """Every log line of this process as JSON to `stream` (stderr unless given)."""
    level = os.environ.get("LOG_LEVEL", "INFO").upper()
    global _stderr
    _request_lines.flush()  # into the stream they were logged for
    handler = _stderr = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The SDKs' HTTP client logs every request at INFO; that is noise at a gateway's volume.
    logging.getLogger("httpx2").setLevel(logging.WARNING)


# gunicorn's own loggers (master and workers), in the same format. Its access log is off: the
# router writes one richer line per request itself.
GUNICORN_LOGCONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": JsonFormatter}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json"}},
    "root": {"handlers": ["stderr"], "level": os.environ.get("LOG_LEVEL", "INFO").upper()},
    "loggers": {
        "gunicorn.error": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "httpx2": {"level": "WARNING"},
    },
}
