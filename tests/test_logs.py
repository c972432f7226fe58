"""The JSON log line (logs.JsonFormatter): one object per line, the request's fields spread; and
the request's own line (logs.log_request), the same object written without a LogRecord."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from ai_router import batches, logs
from ai_router.batches import BATCH_SECONDS
from ai_router.logs import (
    FIELDS, JsonFormatter, configure_logging, log_request, new_request_id, request_id_var,
)  # fmt: skip
from support import wait_until


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


@pytest.fixture
def fresh_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """configure_logging may be called: the root logger's handlers and level, and what logs
    keeps of them, are put back afterwards."""
    root = logging.getLogger()
    level = root.level
    batches.flush_all()  # what earlier tests in this process left waiting goes where they logged it
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(logs, "_stderr", None)
    yield
    root.setLevel(level)


@pytest.fixture
def configured(fresh_logging: None, tmp_path: Path) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """This process's logging set up by configure_logging onto a file; the lines written to it,
    once the lines waiting for a batch are written."""
    path = tmp_path / "stderr.log"
    with path.open("w") as stream:
        configure_logging(stream)

        def written() -> list[dict[str, Any]]:
            batches.flush_all()
            return lines_of(path)

        yield written


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(text) for text in path.read_text().splitlines()]


REQUEST = {"request_id": "r-9", "key": None, "surface": "openai", "status": "ok", "latency_ms": 1.25, "cost_usd": 1.08e-05}


def written_at(line: dict[str, Any]) -> float:
    return datetime.strptime(line.pop("time"), "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


def test_a_requests_line_is_what_the_formatter_writes_for_its_fields(
    configured: Callable[[], list[dict[str, Any]]],
) -> None:
    before = time.time()
    log_request(REQUEST)
    record = logging.LogRecord("ai_router.request", logging.INFO, __file__, 1, "request", None, None)
    record.__dict__[FIELDS] = REQUEST
    formatted = orjson.loads(JsonFormatter().format(record))
    [written] = configured()
    # Stamped to the millisecond, in UTC, when it was written.
    assert before - 0.001 <= written_at(written) <= written_at(formatted) + 0.001
    assert written == formatted
    assert written["request_id"] == "r-9" and written["cost_usd"] == 1.08e-05 and written["key"] is None


def test_a_requests_line_is_stamped_when_the_request_finished_not_when_its_batch_is_written(
    configured: Callable[[], list[dict[str, Any]]],
) -> None:
    finished = time.time() - 3600.25  # as a report made long after its request
    log_request(REQUEST, at=finished)
    [written] = configured()
    assert written_at(written) == pytest.approx(finished, abs=0.001)


def test_a_requests_line_takes_the_request_id_from_the_context_when_its_fields_have_none(
    configured: Callable[[], list[dict[str, Any]]],
) -> None:
    token = request_id_var.set("from-context")
    try:
        log_request({**REQUEST, "request_id": ""})
    finally:
        request_id_var.reset(token)
    log_request({**REQUEST, "request_id": None})
    first, second = configured()
    assert first["request_id"] == "from-context" and "request_id" not in second


def test_no_request_line_is_written_above_info(configured: Callable[[], list[dict[str, Any]]]) -> None:
    logging.getLogger().setLevel(logging.WARNING)  # as LOG_LEVEL=warning sets it
    log_request(REQUEST)
    logging.getLogger("ai_router").warning("still written")
    assert [line["message"] for line in configured()] == ["still written"]


def test_where_logging_is_not_configured_here_the_request_line_goes_through_logging(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(logs, "_stderr", None)
    with caplog.at_level(logging.INFO, logger="ai_router.request"):
        log_request(REQUEST)
    [record] = caplog.records
    assert record.name == "ai_router.request" and record.getMessage() == "request"
    assert record.__dict__[FIELDS] == REQUEST


def test_a_forked_process_writes_request_lines_under_its_own_pid_and_leaves_its_parents_to_it(
    configured: Callable[[], list[dict[str, Any]]],
) -> None:
    log_request({**REQUEST, "request_id": "parent's, before the fork"})  # waiting for a batch
    child = os.fork()  # as gunicorn forks its workers after the master imported this module
    if child == 0:
        try:
            log_request({**REQUEST, "request_id": "child's"})
            batches.flush_all()
        finally:
            os._exit(0)
    os.waitpid(child, 0)
    log_request({**REQUEST, "request_id": "parent's"})
    # In any order: the parent's batch thread may write its first line before the child writes.
    assert sorted((line["request_id"], line["pid"]) for line in configured()) == [
        ("child's", child), ("parent's", os.getpid()), ("parent's, before the fork", os.getpid())
    ]


def test_request_lines_are_written_by_the_batch_thread_within_a_batch(tmp_path: Path) -> None:
    """Nothing here writes the batch: the process's batch thread does, every BATCH_SECONDS."""
    path = tmp_path / "stderr.log"
    script = textwrap.dedent(f"""
        import sys
        from ai_router.logs import configure_logging, log_request
        configure_logging(open({str(path)!r}, "w"))
        log_request({REQUEST!r})
        print("logged", flush=True)
        sys.stdin.read()  # until the test is done
    """)
    process = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == "logged\n"
        wait_until(lambda: len(lines_of(path)) == 1, BATCH_SECONDS + 5, "the request line")
        assert lines_of(path)[0]["request_id"] == "r-9"
    finally:
        process.communicate("", timeout=10)


def test_request_lines_still_waiting_are_written_when_the_process_exits(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        from ai_router.logs import configure_logging, log_request
        configure_logging()  # onto stderr
        log_request({REQUEST!r})
    """)
    finished = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True
    )
    assert [orjson.loads(text)["request_id"] for text in finished.stderr.splitlines()] == ["r-9"]


def test_beyond_its_limit_of_waiting_lines_the_request_that_adds_one_writes_them_all(
    configured: Callable[[], list[dict[str, Any]]], tmp_path: Path
) -> None:
    # As the process's queue of lines, but with a limit of 3 and not watched by the batch thread.
    waiting = batches.Queue(logs._write_lines, limit=3)
    handler = logs._stderr
    assert handler is not None
    for number in range(1, 3):
        waiting.add((handler, time.time(), f"r-{number}", REQUEST))
    assert lines_of(tmp_path / "stderr.log") == []
    waiting.add((handler, time.time(), "r-3", REQUEST))
    assert [line["request_id"] for line in lines_of(tmp_path / "stderr.log")] == ["r-1", "r-2", "r-3"]


def test_a_stream_without_a_file_descriptor_gets_the_request_line_through_logging(fresh_logging: None) -> None:
    stream = io.StringIO()  # as pytest's capture of sys.stderr: no fileno()
    configure_logging(stream)
    log_request(REQUEST)
    [line] = [orjson.loads(text) for text in stream.getvalue().splitlines()]
    assert line["message"] == "request" and line["request_id"] == "r-9"


def test_request_ids_are_32_hex_digits_and_never_repeat() -> None:
    ids = [new_request_id() for _ in range(2000)]  # past several reads of the generator
    assert all(len(id_) == 32 and int(id_, 16) >= 0 and id_ == id_.lower() for id_ in ids)
    assert len(set(ids)) == len(ids)


def test_a_forked_process_makes_ids_of_its_own() -> None:
    new_request_id()  # the parent has ids made ahead
    reader, writer = os.pipe()
    child = os.fork()  # as gunicorn forks its workers
    if child == 0:
        try:
            os.write(writer, " ".join(new_request_id() for _ in range(300)).encode())
        finally:
            os._exit(0)
    os.close(writer)
    with os.fdopen(reader) as pipe:
        childs = set(pipe.read().split())
    os.waitpid(child, 0)
    parents = {new_request_id() for _ in range(300)}
    assert len(childs) == 300 and not childs & parents
