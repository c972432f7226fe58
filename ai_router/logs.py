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
from contextvars import ContextVar
from typing import Any

import orjson

request_id_var: ContextVar[str] = ContextVar("request_id", default="")

# `extra={FIELDS: {...}}`: the line's fields as one dict, for a line with many (the request's
# own): logging copies each key of `extra` onto the record one by one, checking each.
FIELDS = "fields"


def new_request_id() -> str:
    """An id for a request that came without one: 32 random hex digits, like a uuid4's hex
    (uuid.uuid4().hex costs four times as much: a UUID object made only to be printed)."""
    return secrets.token_hex(16)


# A log record gathers what the JSON line below never shows, at a cost: the caller's file and
# line (a walk up the stack), and the thread's and process's names, where under gevent every
# request is a greenlet of its own that `threading.current_thread()` first makes a thread object
# for. The logging HOWTO's "Optimization" section names these switches.
logging._srcfile = None
logging.logThreads = False
logging.logMultiprocessing = False

# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}


class JsonFormatter(logging.Formatter):
    # The time down to the second, formatted once a second rather than once a line.
    _second = -1
    _stamp = ""

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        entry: dict[str, Any] = {
            "time": f"{self._stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        attributes = record.__dict__
        fields = attributes.get(FIELDS)
        request_id = (fields or attributes).get("request_id") or request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        if fields is not None:
            entry.update(fields)
            if request_id:  # the one found above, never an empty one of the fields'
                entry["request_id"] = request_id
            else:
                entry.pop("request_id", None)
        for key, value in attributes.items():
            if key not in _STANDARD and key != "request_id" and key != FIELDS:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        try:
            return orjson.dumps(entry, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        except TypeError:  # what orjson refuses (an integer over 64 bits), json takes
            return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging() -> None:
    level = os.environ.get("LOG_LEVEL", "INFO").upper()
    handler = logging.StreamHandler()
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
