"""A second floor: the least bookkeeping any gateway does per request, on the bare Flask relay.

    UPSTREAM_URL=http://127.0.0.1:8091 gunicorn -k ai_router.http_api.server.worker.Worker -w 1 \
        --chdir scripts/bench gateway_floor:app

POST /v1/chat/completions reads the JSON body to route on its `provider/model`, writes the model
back, adds the provider key, relays it (geventhttpclient, like flask_floor.py), reads the usage
from the answer and passes the answer's bytes on. POST /generate does the same from a native
body, translating to Chat Completions and back. Every request gets a request id header, a count
in memory and one JSON log line (stderr, as the router's).

Nothing else: no validation (a client's mistake reaches the provider), no keys, limits, budgets,
retries, fallbacks or cooldowns, and counts that no scrape can read. No gateway that does what
the router's brief asks can cost less; `make bench-worker` shows how close the router comes.
A bench fixture on loopback only: it keeps a count per model name a client sends, without bound.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import uuid
from collections import Counter
from typing import Any

import orjson
from flask import Flask, Response, g, request
from geventhttpclient import HTTPClient

app = Flask(__name__)
_upstream = HTTPClient.from_url(os.environ["UPSTREAM_URL"], concurrency=10_000)
_upstream_headers = {
    "content-type": "application/json",
    "authorization": f"Bearer {os.environ.get('OPENAI_API_KEY', 'sk-floor')}",
}
_requests: Counter[tuple[str, str, int]] = Counter()
_tokens: Counter[tuple[str, str]] = Counter()

log = logging.getLogger("gateway_floor")
_handler = logging.StreamHandler(sys.stderr)
_handler.setFormatter(logging.Formatter("%(message)s"))
log.addHandler(_handler)
log.setLevel(logging.INFO)
log.propagate = False


@app.before_request
def open_request() -> None:
    g.request_id = request.environ.get("HTTP_X_REQUEST_ID") or uuid.uuid4().hex
    g.started = time.monotonic()


@app.after_request
def close_request(response: Response) -> Response:
    response.headers["x-request-id"] = g.request_id
    provider, model = g.get("route", ("", ""))
    usage: dict[str, Any] = g.get("usage", {})
    _requests[(provider, model, response.status_code)] += 1
    _tokens[(provider, model)] += usage.get("total_tokens") or 0
    line = {
        "message": "request", "request_id": g.request_id, "provider": provider, "model": model,
        "status": response.status_code, "latency_ms": round((time.monotonic() - g.started) * 1000, 2),
        "input_tokens": usage.get("prompt_tokens"), "output_tokens": usage.get("completion_tokens"),
    }  # fmt: skip
    log.info(orjson.dumps(line).decode())
    return response


def _post(body: dict[str, Any]) -> tuple[int, bytes, dict[str, Any]]:
    answer = _upstream.request("POST", "/v1/chat/completions", body=orjson.dumps(body), headers=_upstream_headers)
    raw: bytes = answer.read()
    completion: dict[str, Any] = orjson.loads(raw)
    g.usage = completion.get("usage") or {}
    return answer.status_code, raw, completion


@app.post("/v1/chat/completions")
def chat() -> Response:
    body = orjson.loads(request.get_data())
    provider, _, model = body["model"].partition("/")
    body["model"] = model
    g.route = (provider, model)
    status, raw, _ = _post(body)
    return Response(raw, status=status, content_type="application/json")


@app.post("/generate")
def generate() -> Response:
    body = orjson.loads(request.get_data())
    provider, model = body.get("provider") or "openai", body.get("model") or "gpt-4o-mini"
    g.route = (provider, model)
    wire = {"model": model, "messages": [{"role": "user", "content": body["prompt"]}]}
    if body.get("max_tokens") is not None:
        wire["max_completion_tokens"] = body["max_tokens"]
    status, _, completion = _post(wire)
    choice = completion["choices"][0]
    usage = g.usage
    answer = {
        "content": choice["message"].get("content") or "", "provider": provider, "model": model,
        "finish_reason": choice.get("finish_reason"),
        "usage": {"input_tokens": usage.get("prompt_tokens"), "output_tokens": usage.get("completion_tokens"),
                  "total_tokens": usage.get("total_tokens")},
    }  # fmt: skip
    return Response(orjson.dumps(answer), status=status, content_type="application/json")
