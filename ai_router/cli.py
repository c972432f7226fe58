"""`ai-router`: serve | grpc | http | simulate | chat | check-config.

`serve` runs the gRPC server and gunicorn as two child processes (so the gevent process never
imports grpc) and, when no provider key is set, the provider simulator as a third, pointing the
providers at it. SIGTERM or Ctrl-C stops all of them gracefully.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import NoReturn
from pathlib import Path

from ai_router.config import ConfigError, ProviderSettings, Settings, load_settings
from ai_router.config_snapshot import SHARED_METRICS_VARIABLE, SNAPSHOT_VARIABLE
from ai_router.logs import configure_logging
from ai_router.wire import bedrock_converse as bedrock

log = logging.getLogger("ai_router.serve")

SIMULATOR_HOST = "127.0.0.1"
SIMULATOR_API_KEY = "simulator-key"
# Paced like a real model in `serve`, so a person trying /stream sees tokens arrive one by one.
SIMULATOR_PACE = ["--ttft", "0.2", "--token-rate", "20"]
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
CHILD_STOP_SECONDS = 5.0  # beyond a server's graceful stop, before it is killed
DEFAULT_GUNICORN_CONF = "gunicorn.conf.py"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.config:
        os.environ["CONFIG_PATH"] = args.config
    configure_logging()
    if args.command == "simulate":
        return _simulate(args)
    if args.command == "chat":
        from ai_router.chat import run as chat

        return chat(args)
    if args.command == "check-config":
        from ai_router.check_config import run as check_config

        return check_config(args.path)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"ai-router: invalid configuration\n{exc}", file=sys.stderr)
        return 2
    from ai_router.access.gate import check_state
    from ai_router.errors import StateUnavailable

    try:
        check_state(settings)
    except StateUnavailable as exc:
        print(f"ai-router: cannot start: {exc}", file=sys.stderr)
        return 2
    if args.command == "grpc":
        from ai_router.grpc_api.server import serve as serve_grpc

        serve_grpc(settings)
        return 0
    if args.command == "http":
        return _exec_gunicorn(args.gunicorn_config)
    return _serve(settings, args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ai-router", description=__doc__.split("\n")[0])
    parser.add_argument("--config", help="config file (default: $CONFIG_PATH or ./config.yaml)")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gRPC and HTTP servers")
    serve.add_argument(
        "--simulator",
        choices=("auto", "always", "never"),
        default="auto",
        help="serve against the built-in provider simulator: when no provider key is set (auto)",
    )
    serve.add_argument("--gunicorn-config", default=None, help=_GUNICORN_HELP)
    commands.add_parser("grpc", help="run the gRPC server only")
    http = commands.add_parser("http", help="run the HTTP server (gunicorn + gevent) only")
    http.add_argument("--gunicorn-config", default=None, help=_GUNICORN_HELP)
    simulate = commands.add_parser("simulate", help="run the provider simulator")
    simulate.add_argument("--host", default=SIMULATOR_HOST)
    simulate.add_argument("--port", type=int, default=8090)
    simulate.add_argument("--latency", type=float, default=0.0, help="seconds before answering")
    simulate.add_argument("--ttft", type=float, default=0.0, help="seconds to the first token")
    simulate.add_argument("--token-rate", type=float, default=0.0, help="tokens/s; 0: at once")
    simulate.add_argument(
        "--no-key", action="store_true", help="answer without a key, as a local Ollama or vLLM does"
    )
    _add_chat(commands)
    check = commands.add_parser(
        "check-config", help="validate a config file and list every problem in it"
    )
    check.add_argument("path", nargs="?", help="default: --config, $CONFIG_PATH or ./config.yaml")
    return parser


def _add_chat(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    chat = commands.add_parser("chat", help="ask a running router a question")
    chat.add_argument("prompt", help="the question")
    chat.add_argument("--model", help="a model id, or provider/model")
    chat.add_argument("--provider", help="a provider's name (default: openai without --model)")
    chat.add_argument("--system", help="a system prompt")
    chat.add_argument("--max-tokens", type=int, help="default: the provider's default_max_tokens")
    chat.add_argument(
        "--no-stream", action="store_true", help="wait for the whole answer, then print it"
    )
    transport = chat.add_mutually_exclusive_group()
    transport.add_argument(
        "--grpc", dest="transport", action="store_const", const="grpc", help="(default)"
    )
    transport.add_argument("--http", dest="transport", action="store_const", const="http")
    chat.set_defaults(transport="grpc")
    chat.add_argument(
        "--url",
        help="gRPC: host:port (default 127.0.0.1:$GRPC_PORT, else 50051); "
        "HTTP: http://host:port (default http://127.0.0.1:$HTTP_PORT, else 8080)",
    )
    chat.add_argument("--timeout", type=float, help="deadline in seconds (default: 300)")


_GUNICORN_HELP = "gunicorn settings file (default: $GUNICORN_CONF or ./gunicorn.conf.py)"


def _simulate(args: argparse.Namespace) -> int:
    from ai_router.simulator import SimulatorSettings, serve

    serve(
        args.host,
        args.port,
        SimulatorSettings(
            latency=args.latency,
            ttft=args.ttft,
            token_rate=args.token_rate,
            require_key=not args.no_key,
        ),
    )
    return 0


def _gunicorn_config(path: str | None) -> str:
    config = path or os.environ.get("GUNICORN_CONF") or DEFAULT_GUNICORN_CONF
    if not Path(config).is_file():
        raise SystemExit(
            f"ai-router: gunicorn settings {config!r} not found; run from the repository root "
            "or pass --gunicorn-config PATH (or set GUNICORN_CONF)"
        )
    return config


def _exec_gunicorn(path: str | None) -> NoReturn:
    command = _gunicorn_command(path)
    os.execv(command[0], command)


def _gunicorn_command(path: str | None) -> list[str]:
    config = _gunicorn_config(path)
    return [sys.executable, "-m", "gunicorn", "-c", config, "ai_router.http_api.server.wsgi:app"]


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    env = dict(os.environ)
    simulator: list[subprocess.Popen[bytes]] = []
    servers: list[subprocess.Popen[bytes]] = []
    # A server that takes no key (a local Ollama) neither calls for the simulator nor goes to it.
    keyed = [p for p in settings.providers.values() if p.key_required]
    unkeyed = [p for p in keyed if not _has_credentials(p, env)]
    use_simulator = args.simulator == "always" or (
        args.simulator == "auto" and len(unkeyed) == len(keyed) > 0
    )
    stop = _Signals()
    # What the servers write for each other lives here, and goes when serve does.
    run = Path(tempfile.mkdtemp(prefix="ai-router-serve-"))
    try:
        env.update(_shared_files(run, env))
        if use_simulator:
            port = _free_port()
            simulator.append(_spawn(["simulate", "--port", str(port), *SIMULATOR_PACE], env))
            _wait_for_port(SIMULATOR_HOST, port)
            env.update(_simulator_environment(settings, f"http://{SIMULATOR_HOST}:{port}"))
            print(
                "No provider API key is set "
                f"({', '.join(_credential_variables(p) for p in keyed)}): "
                f"serving against the built-in provider simulator at "
                f"http://{SIMULATOR_HOST}:{port}. Answers are simulated, not from a real model. "
                "Set a key and restart to reach the real provider.",
                flush=True,
            )
        servers.append(_spawn(["grpc"], env))
        servers.append(_spawn_command(_gunicorn_command(args.gunicorn_config), env))
        host = settings.server.host
        print(
            f"ai-router serving gRPC on {host}:{settings.server.grpc_port} and HTTP on "
            f"http://{host}:{settings.server.http_port}",
            flush=True,
        )
        exit_code = _wait_for_first_exit(simulator + servers, stop, lambda: _reload(servers))
    finally:
        # Servers first, so in-flight requests can finish against the simulator; then it.
        _stop_children(servers, settings.server.longest_stop_seconds + CHILD_STOP_SECONDS)
        _stop_children(simulator, CHILD_STOP_SECONDS)
        shutil.rmtree(run, ignore_errors=True)
    return exit_code


def _shared_files(run: Path, env: Mapping[str, str]) -> dict[str, str]:
    """The environment that puts the servers' shared files in `run`: the config snapshot that
    gunicorn's master writes for its workers, and the metrics directory where the gRPC server
    writes its values beside the workers', so that the HTTP /metrics shows both (a port of the
    gRPC server's own would keep a second serve on the host from starting). A directory given
    in PROMETHEUS_MULTIPROC_DIR is used instead, emptied of an earlier run's values."""
    metrics = Path(env.get("PROMETHEUS_MULTIPROC_DIR") or run / "metrics")
    metrics.mkdir(parents=True, exist_ok=True)
    for stale in metrics.iterdir():
        stale.unlink()
    return {
        SNAPSHOT_VARIABLE: str(run / "config.yaml"),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics),
        SHARED_METRICS_VARIABLE: str(metrics),
        "GRPC_METRICS_PORT": "0",
    }


def _has_credentials(provider: ProviderSettings, env: Mapping[str, str]) -> bool:
    """A key, or for Bedrock AWS credentials in the environment (an instance role is not seen:
    `--simulator never` serves on one)."""
    if provider.type == "bedrock" and bedrock.credentials_in_environment(env):
        return True
    return provider.api_key is not None


def _credential_variables(provider: ProviderSettings) -> str:
    return bedrock.MISSING_CREDENTIALS if provider.type == "bedrock" else provider.api_key_env


def _simulator_environment(settings: Settings, base_url: str) -> Mapping[str, str]:
    env = {}
    for provider in settings.providers.values():
        if not provider.key_required:
            continue
        prefix = provider.name.upper().replace("-", "_")
        if provider.type == "bedrock":
            # Requests signed with the simulator's AWS credentials, which it checks.
            env.update({
                provider.api_key_env: "", "AWS_SESSION_TOKEN": "",
                "AWS_ACCESS_KEY_ID": bedrock.SIMULATOR_ACCESS_KEY_ID,
                "AWS_SECRET_ACCESS_KEY": bedrock.SIMULATOR_SECRET_ACCESS_KEY,
            })  # fmt: skip
            env[f"{prefix}_BASE_URL"] = base_url
            continue
        env[provider.api_key_env] = SIMULATOR_API_KEY
        env[f"{prefix}_BASE_URL"] = f"{base_url}/v1" if provider.type == "openai" else base_url
    return env


class _Signals:
    """Records SIGTERM/SIGINT (stop, children in order) and SIGHUP (reload) instead of acting
    inside a signal handler."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._reload = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self._stop.set())
        signal.signal(signal.SIGHUP, lambda *_: self._reload.set())

    @property
    def received(self) -> bool:
        return self._stop.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`, waking at once on a stop signal; True when one came."""
        return self._stop.wait(seconds)

    def take_reload(self) -> bool:
        requested = self._reload.is_set()
        self._reload.clear()
        return requested


def _reload(servers: list[subprocess.Popen[bytes]]) -> None:
    """Validate config.yaml here first, so an invalid file reaches no server; then each server
    reloads (gunicorn replaces its workers gracefully, the gRPC server swaps its router)."""
    try:
        load_settings()
    except ConfigError as error:
        log.error("config rejected on SIGHUP, the running config stays: %s", error)
        return
    signalled = []
    for server in servers:
        if server.poll() is None:
            # gunicorn's master would replace its workers, leaving nobody to accept while the
            # new ones import the SDKs; its workers reload in place instead.
            pids = _children(server.pid) if _is_gunicorn(server) else [server.pid]
            for pid in pids:
                os.kill(pid, signal.SIGHUP)
            signalled += pids
    log.info("config valid: reloading processes %s", signalled)


def _is_gunicorn(process: subprocess.Popen[bytes]) -> bool:
    return "gunicorn" in " ".join(str(part) for part in process.args)  # type: ignore[union-attr]


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as children:
        return [int(child) for child in children.read().split()]


def _spawn(arguments: list[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    return _spawn_command([sys.executable, "-m", "ai_router.cli", *arguments], env)


def _spawn_command(command: list[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    # A session of its own: Ctrl-C reaches only this parent, which stops each child gracefully
    # with SIGTERM (gunicorn would take SIGINT from the terminal as "quit now").
    return subprocess.Popen(
        command, env=env, start_new_session=True, preexec_fn=_stop_with_parent
    )


def _stop_with_parent() -> None:
    """In the child, before exec: ask Linux for SIGTERM when the parent dies, so a `serve` that
    is killed outright does not leave its servers running unsupervised."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _wait_for_first_exit(
    children: list[subprocess.Popen[bytes]], signals: _Signals, reload: Callable[[], None]
) -> int:
    while not signals.wait(0.2):
        if signals.take_reload():
            reload()
        for child in children:
            code = child.poll()
            if code is not None:
                log.error("child %r exited with %s; stopping the others", child.args, code)
                return code or 1
    return 0


def _stop_children(children: list[subprocess.Popen[bytes]], timeout: float) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for child in children:
        try:
            child.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((SIMULATOR_HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"ai-router: the simulator did not start on {host}:{port}")


if __name__ == "__main__":
    sys.exit(main())
