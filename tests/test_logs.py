"""The JSON log line (logs.JsonFormatter): one object per line, the request's fields spread."""

from __future__ import annotations

import logging

import orjson

from ai_router.logs import FIELDS, JsonFormatter, request_id_var


def line(extra: dict[str, object]) -> dict[str, object]:
    record = logging.LogRecord("ai_router.request", logging.INFO, __file__, 1, "request", None, None)
    record.__dict__.update(extra)
    parsed: dict[str, object] = orjson.loads(JsonFormatter().format(record))
    return parsed


def test_a_lines_fields_are_spread_into_it_beside_its_other_extras() -> None:
    entry = line({FIELDS: {"request_id": "r-1", "status": "ok", "latency_ms": 2.5}, "attempt": 2})
    assert entry["message"] == "request" and entry["level"] == "info"
    assert (entry["request_id"], entry["status"], entry["latency_ms"], entry["attempt"]) == ("r-1", "ok", 2.5, 2)
    assert FIELDS not in entry


def test_the_request_id_comes_from_the_context_when_the_fields_have_none() -> None:
    token = request_id_var.set("from-context")
    try:
        assert line({FIELDS: {"request_id": "", "status": "ok"}})["request_id"] == "from-context"
        assert line({FIELDS: {"status": "ok"}})["request_id"] == "from-context"
    finally:
        request_id_var.reset(token)
    assert "request_id" not in line({FIELDS: {"request_id": None, "status": "ok"}})
