"""The floor for the HTTP surfaces: the least a Flask front door under gunicorn's gevent worker
can do, which is what the router is built on.

    UPSTREAM_URL=http://127.0.0.1:8091 gunicorn -k ai_router.http_api.server.worker.Worker -w 1 \
        --chdir scripts/bench flask_floor:app

POST /v1/chat/completions reads the body and relays its bytes to the upstream over
geventhttpclient (what the router's own fast path uses under gevent, providers/transport.py),
then answers with the upstream's bytes. No parsing, validation, routing, auth, limits, metering,
logging or metrics. The router's distance from it is what its own work costs; its distance from
nginx is what Python, Flask and gunicorn cost.
"""

from __future__ import annotations

import os

from flask import Flask, Response, request
from geventhttpclient import HTTPClient

app = Flask(__name__)
_upstream = HTTPClient.from_url(os.environ["UPSTREAM_URL"], concurrency=10_000)


@app.post("/v1/chat/completions")
def relay() -> Response:
    answer = _upstream.request(
        "POST",
        "/v1/chat/completions",
        body=request.get_data(),
        headers={"content-type": "application/json"},
    )
    return Response(answer.read(), status=answer.status_code, content_type="application/json")
