"""The floor for the HTTP surfaces: the least a Flask front door under gunicorn's gevent worker
can do, which is what the router is built on.

    UPSTREAM_URL=http://127.0.0.1:8091 gunicorn -k gevent -w 1 --chdir scripts/bench flask_floor:app

POST /v1/chat/completions reads the body and relays its bytes to the upstream over urllib3 (the
client the router's own fast path uses, providers/upstream.py), then answers with the upstream's
bytes. No parsing, validation, routing, auth, limits, metering, logging or metrics. The router's
distance from it is what its own work costs; its distance from nginx is what Python, Flask and
gunicorn cost.
"""

from __future__ import annotations

import os

import urllib3
from flask import Flask, Response, request

app = Flask(__name__)
_upstream = urllib3.PoolManager(maxsize=1000).connection_from_url(os.environ["UPSTREAM_URL"])


@app.post("/v1/chat/completions")
def relay() -> Response:
    answer = _upstream.urlopen(
        "POST",
        "/v1/chat/completions",
        body=request.get_data(),
        headers={"content-type": "application/json"},
        retries=False,
        redirect=False,
    )
    return Response(answer.data, status=answer.status, content_type="application/json")
