"""What the side-by-side tools (worker_cpu.py, grpc_unary_cpu.py) share: the routers to run (this
checkout's, its variants, another commit's from a git worktree), each one's config, and putting
everything away after."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from run import REPO, UNARY_TOKENS, Fleet, free_port, router_environment


@dataclass(frozen=True)
class RouterRun:
    name: str
    overrides: dict[str, str]  # environment variables of a variant
    checkout: Path  # `python -m` and gunicorn put the working directory first on sys.path


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    """`name:VAR=VALUE,VAR=VALUE` as the variant's name and its environment."""
    name, _, assignments = text.partition(":")
    env = dict(item.split("=", 1) for item in assignments.split(",") if item)
    if not name or not env:
        raise argparse.ArgumentTypeError(f"expected NAME:VAR=VALUE[,VAR=VALUE...], got {text!r}")
    return name, env


def add_router_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variant", type=parse_variant, action="append", default=[],
                        help="the router again with these environment variables")  # fmt: skip
    parser.add_argument("--baseline", metavar="COMMIT",
                        help="the router of this commit too, run from a worktree of it (the same run weighs a change)")  # fmt: skip


def check_out(commit: str, path: Path) -> None:
    """`commit`'s tree at `path` (a detached git worktree), with this checkout's generated
    protobuf modules, which git does not hold."""
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "--quiet", str(path), commit], check=True)
    for generated in (REPO / "ai_router" / "_generated").glob("*_pb2*"):
        shutil.copy2(generated, path / "ai_router" / "_generated")


def router_runs(args: argparse.Namespace, workdir: Path) -> list[RouterRun]:
    """This checkout's router, its variants, and the baseline's (checked out under workdir)."""
    runs = [RouterRun("router", {}, REPO)]
    runs += [RouterRun(name, overrides, REPO) for name, overrides in args.variant]
    if args.baseline:
        check_out(args.baseline, workdir / "baseline")
        runs.append(RouterRun(f"baseline {args.baseline}", {}, workdir / "baseline"))
    return runs


def router_env(run: RouterRun, workdir: Path, upstream_url: str, server: dict[str, Any]) -> dict[str, str]:
    """The environment of `run`'s router: a config with `server`'s settings and both families
    on the static upstream, and the variant's variables."""
    config = workdir / f"{run.name.replace(' ', '-')}.yaml"
    settings = {"host": "127.0.0.1", **server}
    for port in ("http_port", "grpc_port"):  # the one the tool does not ask still needs a port
        if port not in settings:
            settings[port] = free_port()
    provider = {"default_max_tokens": UNARY_TOKENS, "timeout": 120, "max_retries": 0}
    config.write_text(yaml.safe_dump({
        "server": settings,
        "providers": {"openai": {"default_model": "gpt-4o-mini", **provider},
                      "anthropic": {"default_model": "claude-3-5-haiku-20241022", **provider}},
    }))  # fmt: skip
    return {**router_environment(config, upstream_url), **run.overrides}


@contextmanager
def fleet_in(workdir: Path, tool: str) -> Iterator[Fleet]:
    """A fleet working in `workdir`: stopped at the end, the baseline's worktree removed, and
    the workdir too unless the run failed (its logs are then kept)."""
    fleet = Fleet(workdir)
    finished = False
    try:
        yield fleet
        finished = True
    finally:
        fleet.stop_all()
        if (workdir / "baseline").exists():
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(workdir / "baseline")], check=False)
        if finished:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"{tool}: logs kept in {workdir}", file=sys.stderr)
