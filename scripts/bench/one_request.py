"""CPU per request of the router's Flask app beside the bare Flask relay's, in process, and where
the router's share goes.

    .venv/bin/python scripts/bench/one_request.py 2>/dev/null    # CPU per request, three rounds
    .venv/bin/python scripts/bench/one_request.py --profile 2>/dev/null  # and cProfile of the router's

Each app is called directly (`app.wsgi_app` on a prepared environ): no server, no client socket,
so what differs between them is the work each does per request, not gevent's HTTP server, which
both share in production. The upstream is the bench's static one (upstream.py), over loopback,
started here. The rounds interleave the apps, so a machine's drift falls on all of them alike.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import cProfile  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import pstats  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import yaml  # noqa: E402
from werkzeug.test import EnvironBuilder  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import PROMPT, UNARY_TOKENS, free_port, port_open  # noqa: E402

Call = Callable[[], None]


def caller(app: Any, path: str, body: dict[str, Any]) -> Call:
    """One request to `app`, its answer read whole; a non-200 stops the measurement."""
    data = json.dumps(body).encode()
    environ = EnvironBuilder(path=path, method="POST", data=data, content_type="application/json").get_environ()

    def call() -> None:
        statuses: list[str] = []
        answer = app.wsgi_app({**environ, "wsgi.input": io.BytesIO(data)}, lambda status, *_: statuses.append(status))
        body = b"".join(answer)
        getattr(answer, "close", lambda: None)()
        if not statuses[0].startswith("200"):
            raise RuntimeError(f"{path}: {statuses[0]} {body[:300]!r}")

    return call


def cpu_per_request(call: Call, count: int) -> float:
    started = time.process_time()
    for _ in range(count):
        call()
    return (time.process_time() - started) / count * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="per app and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="then cProfile 2,000 router /v1 requests")
    args = parser.parse_args()

    port = free_port()
    upstream = subprocess.Popen([sys.executable, str(HERE / "upstream.py"), "--port", str(port)])
    workdir = Path(tempfile.mkdtemp(prefix="ai-router-one-request-"))
    try:
        deadline = time.monotonic() + 20
        while not port_open(port):
            if time.monotonic() > deadline or upstream.poll() is not None:
                raise RuntimeError("the static upstream did not start")
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port}"
        config = workdir / "config.yaml"
        provider = {"default_max_tokens": UNARY_TOKENS, "timeout": 120, "max_retries": 0}
        config.write_text(yaml.safe_dump({"providers": {
            "openai": {"default_model": "gpt-4o-mini", **provider},
            "anthropic": {"default_model": "claude-3-5-haiku-20241022", **provider},
        }}))  # fmt: skip
        os.environ.update(
            CONFIG_PATH=str(config), OPENAI_API_KEY="sk-bench", ANTHROPIC_API_KEY="sk-bench",
            OPENAI_BASE_URL=f"{url}/v1", ANTHROPIC_BASE_URL=url, UPSTREAM_URL=url,
            PROMETHEUS_MULTIPROC_DIR=str(workdir),
        )  # fmt: skip
        import flask_floor

        from ai_router.config import load_settings
        from ai_router.http_api.app import create_app

        from ai_router.logs import configure_logging

        configure_logging()  # as in a worker: the request's log line is part of its cost (to stderr)
        router = create_app(load_settings(str(config)))
        chat = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": PROMPT}],
                "max_completion_tokens": UNARY_TOKENS}  # fmt: skip
        calls = {
            "bare Flask relay": caller(flask_floor.app, "/v1/chat/completions", {**chat, "model": "gpt-4o-mini"}),
            "router /v1/chat/completions": caller(router, "/v1/chat/completions", chat),
            "router /generate": caller(router, "/generate", {"provider": "openai", "prompt": PROMPT, "max_tokens": UNARY_TOKENS}),
        }
        for call in calls.values():
            cpu_per_request(call, 300)  # warm-up
        figures: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(args.rounds):
            for name, call in calls.items():
                figures[name].append(cpu_per_request(call, args.requests))
        print(f"CPU per request, in process ({args.requests} requests per app and round, {args.rounds} rounds, interleaved):")
        relay = figures["bare Flask relay"]
        for name, values in figures.items():
            # The relay's CPU over the router's, round by round: the machine's drift between
            # rounds falls on both, so this holds still where the figures themselves do not.
            ratios = sorted(floor / value for floor, value in zip(relay, values))
            print(f"  {name:30} {', '.join(f'{v:.0f}' for v in values)} µs; the relay's ÷ this, median ×{ratios[len(ratios) // 2]:.2f}")
        if args.profile:
            profile = cProfile.Profile()
            profile.runcall(lambda: [calls["router /v1/chat/completions"]() for _ in range(2000)])
            pstats.Stats(profile).sort_stats("cumulative").print_stats(40)
    finally:
        upstream.terminate()
        upstream.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
