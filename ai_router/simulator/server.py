"""The simulator's HTTP server: routing, timing, fault injection and the `/_sim` control API.

Built on the stdlib so it runs anywhere: `build_server` gives a plain ThreadingHTTPServer that
tests run in a thread; `serve` monkey-patches with gevent first, which turns every connection
thread into a greenlet so thousands of slow streams cost little.

Upstream endpoints (each request is recorded and may take one queued fault):
  POST /v1/chat/completions, GET /v1/models   OpenAI wire format, `x-request-id` header
  POST /v1/embeddings                         (embeddings.py)
  POST /v1/messages                           Anthropic wire format, `request-id` header
  POST /v1/messages/count_tokens              (token_count.py)
  POST /v1/responses, GET|DELETE /v1/responses/{id}, GET /v1/responses/{id}/input_items
                                              OpenAI Responses API (responses.py)
  POST /v1beta/models/{model}:generateContent Gemini wire format (gemini_wire.py); the model and
       /v1beta/models/{model}:streamGenerateContent?alt=sse   the stream come from the URL
  POST /openai/...                            Azure OpenAI's paths (azure_paths.py)
  POST /model/{modelId}/converse, /converse-stream   Bedrock's Converse (bedrock_wire.py): SigV4
                                              checked, the stream in AWS's event-stream framing
Control endpoints (JSON, never recorded, never faulted):
  GET|DELETE /_sim/requests   the recorded requests / forget them
  GET|POST   /_sim/settings   read / update latency, ttft, token_rate
  GET|POST   /_sim/faults     the queue / append {"faults": [...]} (see script.Fault)
  POST       /_sim/reset      forget requests and faults, restore the starting settings
"""

from __future__ import annotations

import json
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ai_router.wire import anthropic_messages, openai_chat, openai_responses
from ai_router.wire import bedrock_converse as bedrock
from ai_router.wire import gemini_generate as gemini

from .azure_paths import AZURE_PREFIX, AzurePath, content_filter_body, parse_azure_path, with_deployment
from .bedrock_request import BedrockCall
from .embeddings import embeddings
from .gemini_request import GeminiCall
from .gemini_wire import GEMINI
from .reply import BadRequest
from .responses import ResponseStore, ResponsesWire, stored_route
from .script import Fault, SimState, SimulatorSettings
from .token_count import count_tokens
from .wire import ANTHROPIC, GARBLED, OPENAI, Turn, Wire

# Upstream endpoints: (method, path) -> (wire format, endpoint kind).
ROUTES: dict[tuple[str, str], tuple[Wire, str]] = {
    ("POST", "/v1" + openai_chat.CHAT_PATH): (OPENAI, "complete"),
    ("GET", "/v1/models"): (OPENAI, "models"),
    ("POST", anthropic_messages.MESSAGES_PATH): (ANTHROPIC, "complete"),
    ("POST", "/v1/embeddings"): (OPENAI, "embeddings"),
    ("POST", anthropic_messages.MESSAGES_PATH + "/count_tokens"): (ANTHROPIC, "count_tokens"),
    ("POST", "/v1" + openai_responses.PATH): (OPENAI, "responses"),
}
# Endpoints answered whole by a function of the body (which raises BadRequest).
ANSWERS: dict[str, Callable[[object], dict[str, Any]]] = {
    "embeddings": embeddings,
    "count_tokens": count_tokens,
}


class _Malformed:
    """Marks a body that is not valid JSON (None is a valid JSON `null`)."""


MALFORMED = _Malformed()


def _parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:  # includes UnicodeDecodeError and the empty body
        return MALFORMED


class SimulatorServer(ThreadingHTTPServer):
    daemon_threads = True  # an open stream must never keep the process alive
    request_queue_size = 1024  # the default backlog of 5 drops connections under a load test

    def __init__(self, address: tuple[str, int], state: SimState) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.state = state
        self.responses = ResponseStore()  # what the Responses API stored (`store`)
        super().__init__(address, SimulatorHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up between requests on a keep-alive connection is normal here.
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host with getfqdn, which can stall on a box
        # without DNS; the name is only used in log lines, so skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)


class SimulatorHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real APIs; needs explicit framing
    server_version = "ai-router-simulator"
    disable_nagle_algorithm = True  # small SSE chunks must leave at once, not after a delayed ACK
    server: SimulatorServer

    # Per-request state, set by _upstream before any response helper runs.
    _wire: Wire = OPENAI
    _request_id: str = ""
    _headers_sent: bool = False

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request drowns the output of a load test

    # ---- dispatch ---------------------------------------------------------------------------

    def _dispatch(self) -> None:
        # Reset per-request state: the handler object lives as long as the keep-alive connection.
        self._wire, self._request_id, self._headers_sent = OPENAI, "", False
        self._recorded: dict[str, Any] | None = None
        path = urlsplit(self.path).path
        try:
            raw = self._read_body()
        except ValueError:
            self.close_connection = True  # the framing is unknown, so the connection is unusable
            self._send_json(400, {"error": "bad request framing"})
            return
        try:
            if path.startswith("/_sim/"):
                self._control(path, raw)
            else:
                self._upstream(path, raw)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away; nothing left to tell it
            if self._recorded is not None:
                # Tests read this to prove a client (the router) released an upstream stream.
                self.server.state.mark_closed_early(self._recorded)
        except Exception as exc:  # a simulator bug should look like a 500, not a hung client
            self.close_connection = True
            if not self._headers_sent:
                self._error(500, f"simulator error: {exc!r}")

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            return self._read_chunked()
        length = int(self.headers.get("content-length") or 0)
        if length < 0:
            raise ValueError("negative content-length")
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int(self.rfile.readline(65537).split(b";")[0].strip(), 16)
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # skip trailers
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline()

    # ---- upstream endpoints -----------------------------------------------------------------

    def _upstream(self, path: str, raw: bytes) -> None:
        state = self.server.state
        body = _parse_json(raw)
        headers = {name.lower(): value for name, value in self.headers.items()}
        self._recorded = state.record({"method": self.command, "path": self.path,
                                       "headers": headers,
                                       # which connection it came on: tests see keep-alive
                                       "client_port": self.client_address[1],
                                       "body": None if body is MALFORMED else body})

        azure_path: AzurePath | str | None = None
        if path.startswith(AZURE_PREFIX):
            azure_path = parse_azure_path(path, urlsplit(self.path).query)
            if isinstance(azure_path, AzurePath):
                path = azure_path.openai_path
                body = with_deployment(body, azure_path.deployment)
        route = None if isinstance(azure_path, str) else (
            ROUTES.get((self.command, path)) or stored_route(self.command, path)
        )
        # Gemini's URL names the model and the method: the body is parsed with them.
        gemini_path = gemini.PATH_RE.match(path) if self.command == "POST" else None
        if gemini_path is not None:
            route = (GEMINI, "complete")
            query = parse_qs(urlsplit(self.path).query)
            body = body if body is MALFORMED else GeminiCall(
                gemini_path[2], gemini_path[3] == gemini.STREAM_GENERATE, body)
            if gemini_path[3] == gemini.STREAM_GENERATE and query.get("alt") != ["sse"]:
                self._wire, self._request_id = GEMINI, f"req_sim_{state.next_id()}"
                self._error(400, "the simulator streams Gemini answers as server-sent events only: add ?alt=sse")
                return
        # Bedrock's URL names the model and the method too; its requests are signed.
        bedrock_path = bedrock.PATH_RE.match(path) if self.command == "POST" else None
        if bedrock_path is not None:
            # Imported here: botocore and the encoder import ssl, which `serve` must patch first.
            from .bedrock_wire import BedrockWire, error_headers, signature_problem

            route = (BedrockWire(), "complete")
            body = body if body is MALFORMED else BedrockCall(
                unquote(bedrock_path[1]), bedrock_path[2] == bedrock.CONVERSE_STREAM, body)
            problem = signature_problem(self.command, self.path, headers, raw)
            if problem is not None:
                self._wire, self._request_id = route[0], f"req_sim_{state.next_id()}"
                self._send_json(403, {"message": problem[1]}, error_headers(problem[0]))
                return
        if route is None:
            guess_anthropic = path.startswith("/v1/messages") or "anthropic-version" in headers
            self._wire = ANTHROPIC if guess_anthropic else OPENAI
        else:
            self._wire = route[0]
        self._request_id = f"req_sim_{state.next_id()}"
        if route is None:
            self._error(404, azure_path if isinstance(azure_path, str)
                        else f"Unknown request URL: {self.command} {path}")
            return
        kind = route[1]
        if kind == "responses":
            self._wire = ResponsesWire(self.server.responses)  # one per request: it numbers its events

        fault = state.take_fault(self._wire.family)
        settings = state.settings
        time.sleep((fault.delay if fault else 0.0) + settings.latency)

        if fault and fault.status is not None and fault.code == "content_filter" and azure_path:
            self._send_json(fault.status, content_filter_body(fault.message))
            return
        if fault and fault.status is not None:
            self._error(fault.status, fault.message or f"Simulated error {fault.status}",
                        retry_after=fault.retry_after)
            return
        if settings.require_key and bedrock_path is None and not self._api_key():
            self._error(401, "Missing API key: send `Authorization: Bearer <key>` or `x-api-key: <key>`")
            return
        if kind == "models":
            if not self._non_stream_fault(fault):
                self._send_json(200, OPENAI.models(settings.models))
            return
        if kind == "stored_response":
            if not self._non_stream_fault(fault):
                self._send_json(*self.server.responses.answer(self.command, self.path))
            return
        if body is MALFORMED:
            self._error(400, "The request body is not valid JSON")
            return
        if kind in ANSWERS:
            self._answer_whole(ANSWERS[kind], body, fault)
            return
        try:
            reply = self._wire.parse(body)
        except BadRequest as exc:
            self._error(400, exc.message, exc.param)
            return
        turn = self._wire.new_turn(reply, state.next_id())
        if reply.stream:
            self._stream(turn, settings, fault)
            return
        if self._non_stream_fault(fault):
            return
        # As long as the stream would take: one interval per streamed piece (text token or argument piece).
        rate_wait = len(reply.pieces) / settings.token_rate if settings.token_rate else 0.0
        time.sleep(settings.ttft + rate_wait)
        self._send_json(200, self._wire.message(turn))

    def _answer_whole(
        self, answer: Callable[[object], dict[str, Any]], body: object, fault: Fault | None
    ) -> None:
        try:
            document = answer(body)
        except BadRequest as exc:
            self._error(400, exc.message, exc.param)
            return
        if not self._non_stream_fault(fault):
            time.sleep(self.server.state.settings.ttft)
            self._send_json(200, document)

    def _api_key(self) -> str:
        scheme, _, token = self.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        # Anthropic's header, Azure OpenAI's, or Gemini's (or the `key` query parameter Google
        # also takes).
        gemini_key = self.headers.get(gemini.API_KEY_HEADER, "").strip() or \
            (parse_qs(urlsplit(self.path).query).get("key") or [""])[0]
        return (self.headers.get("x-api-key") or self.headers.get("api-key") or "").strip() or gemini_key

    def _non_stream_fault(self, fault: Fault | None) -> bool:
        """Apply a stream-only fault to a non-stream request; True if it answered the request."""
        if fault is None:
            return False
        if fault.reset_after_tokens is not None:
            self._reset()
            return True
        if fault.error_event_after_tokens is not None:
            # Without a stream to break, the nearest equivalent is the same error as a status.
            status = self._wire.stream_error_status
            self._error(status, fault.message or f"Simulated error {status}")
            return True
        if fault.garbled_after_tokens is not None:
            self._send_raw(200, "application/json", GARBLED)
            return True
        return False

    def _stream(self, turn: Turn, settings: SimulatorSettings, fault: Fault | None) -> None:
        wire = self._wire
        self.send_response(200)
        bedrock_stream = wire.family == bedrock.FAMILY
        self.send_header("content-type", bedrock.EVENT_STREAM if bedrock_stream else "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.send_header(wire.request_id_header, self._request_id)
        self.end_headers()
        self._headers_sent = True
        start = time.monotonic()
        for event in wire.stream_head(turn):
            self._write_chunk(event)

        tokens = turn.reply.pieces  # text tokens, or a tool call's argument pieces: paced and faulted alike
        cut = None
        if fault is not None:
            cuts = (fault.reset_after_tokens, fault.error_event_after_tokens, fault.garbled_after_tokens)
            cut = next((n for n in cuts if n is not None), None)
        if cut is not None:
            tokens = tokens[:cut]  # fewer tokens than `cut`: the fault fires after the last one
        for i, token in enumerate(tokens):
            # Deadlines from one start time, so sleep overshoot does not add up over a long stream.
            interval = i / settings.token_rate if settings.token_rate else 0.0
            self._sleep_until(start + settings.ttft + interval)
            self._write_chunk(wire.stream_token(turn, token))

        if fault is not None and fault.reset_after_tokens is not None:
            self._reset()
            return
        if fault is not None and fault.error_event_after_tokens is not None:
            self._write_chunk(wire.stream_error(fault.message))
            self._end_chunks()
            return
        if fault is not None and fault.garbled_after_tokens is not None:
            self._write_chunk(wire.garbled_event())
            self._end_chunks()
            return
        if not tokens:
            self._sleep_until(start + settings.ttft)
        for event in wire.stream_tail(turn):
            self._write_chunk(event)
        self._end_chunks()

    @staticmethod
    def _sleep_until(deadline: float) -> None:
        delay = deadline - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    # ---- control API ------------------------------------------------------------------------

    def _control(self, path: str, raw: bytes) -> None:
        state = self.server.state
        self._request_id = f"req_sim_{state.next_id()}"
        route = (self.command, path)
        body = _parse_json(raw) if raw else {}
        if body is MALFORMED or not isinstance(body, dict):
            self._send_json(400, {"error": "the body must be a JSON object"})
            return
        try:
            if route == ("GET", "/_sim/requests"):
                self._send_json(200, {"requests": state.requests()})
            elif route == ("DELETE", "/_sim/requests"):
                state.clear_requests()
                self._send_json(200, {"requests": []})
            elif route == ("GET", "/_sim/settings"):
                self._send_json(200, state.settings.to_json())
            elif route == ("POST", "/_sim/settings"):
                self._send_json(200, state.update_settings(body).to_json())
            elif route == ("GET", "/_sim/faults"):
                self._send_json(200, {"faults": [f.to_json() for f in state.pending_faults()]})
            elif route == ("POST", "/_sim/faults"):
                items = body.get("faults")
                if not isinstance(items, list):
                    raise ValueError('the body must be {"faults": [fault, ...]}')
                # Parse all before queueing any, so a bad entry leaves the queue untouched.
                faults = [Fault.from_json(item) for item in items]
                self._send_json(200, {"faults": [f.to_json() for f in state.add_faults(faults)]})
            elif route == ("POST", "/_sim/reset"):
                self.server.responses.clear()
                self._send_json(200, {"settings": state.reset().to_json()})
            else:
                self._send_json(404, {"error": f"unknown control endpoint: {self.command} {path}"})
        except ValueError as exc:
            self._send_json(400, {"error": str(exc)})

    # ---- response helpers -------------------------------------------------------------------

    def _send_json(self, status: int, obj: object, extra: dict[str, str] | None = None) -> None:
        self._send_raw(status, "application/json", json.dumps(obj).encode(), extra)

    def _send_raw(self, status: int, content_type: str, data: bytes,
                  extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        self.send_header(self._wire.request_id_header, self._request_id)
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self._headers_sent = True
        self.wfile.write(data)

    def _error(self, status: int, message: str, param: str | None = None,
               retry_after: float | None = None) -> None:
        extra = {} if retry_after is None else {"retry-after": f"{retry_after:g}"}
        if self._wire.family == bedrock.FAMILY:
            from .bedrock_wire import error_headers, error_type

            extra.update(error_headers(error_type(status)))
        self._send_json(status, self._wire.error_body(status, message, param), extra)

    def _write_chunk(self, data: bytes) -> None:
        # wfile is unbuffered (wbufsize 0): each chunk is on the wire when write returns.
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")

    def _reset(self) -> None:
        """Abort the connection with a TCP RST, as a crashed upstream or a proxy timeout would."""
        self.close_connection = True
        sock = self.connection
        # Linger on, timeout 0: close() discards unsent data and sends RST instead of FIN.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        # rfile holds a reference to the socket; the descriptor only closes when it goes too.
        self.rfile.close()


def build_server(host: str = "127.0.0.1", port: int = 0,
                 settings: SimulatorSettings | None = None) -> SimulatorServer:
    """Bind (port 0 picks a free port: read `server.server_port`) without serving yet.

    Runtime changes go through `server.state` (or the `/_sim` API); `settings` is what
    `POST /_sim/reset` restores.
    """
    return SimulatorServer((host, port), SimState(settings or SimulatorSettings()))


def serve(host: str = "127.0.0.1", port: int = 8000, settings: SimulatorSettings | None = None,
          *, use_gevent: bool = True) -> None:
    """Run the simulator until SIGTERM or SIGINT, then return (so the process exits 0)."""
    if use_gevent:
        # First, before any socket or thread exists: afterwards every connection thread is a greenlet.
        from gevent import monkey

        monkey.patch_all()
    server = build_server(host, port, settings)

    def stop(*_: object) -> None:
        # shutdown() waits for serve_forever to return, so it cannot run on the serving thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    if use_gevent:
        import gevent

        # Python-level handlers could run inside the gevent hub; gevent's own run in a greenlet.
        gevent.signal_handler(signal.SIGTERM, stop)
        gevent.signal_handler(signal.SIGINT, stop)
    else:
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
    print(f"simulator listening on http://{host}:{server.server_port}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
