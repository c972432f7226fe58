"""The Dockerfile and docker-compose.yaml as tests run them on loopback, without Docker.

What the Dockerfile sets (its environment, user, working directory and the files copied there,
volumes, command, HEALTHCHECK) is read from the file; so is compose's `${VAR:-default}`. A
container is then a process tree run as the image's user, in a read-only copy of the image's
working directory, with exactly the environment the image and compose give it; its filesystem
(working directory, volumes, mounts) is a temporary directory, and environment values naming a
place in it are rewritten to that place. The package comes from the repository's virtualenv,
which stands for the image's site-packages (its bin directory for /usr/local/bin).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploy_support import descendants, wait_ready
from support import Process, launch, wait_until

# python:3.11-slim's own environment, with the virtualenv's bin in place of the image's
# /usr/local/bin (python, and the `ai-router` script pip installs there).
BASE_ENV = {
    "PATH": f"{Path(sys.executable).parent}:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
}
# `useradd --create-home` gives the image's user this home, which Docker puts in HOME.
USER_HOME = "/home/airouter"


# --- the Dockerfile ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Image:
    env: dict[str, str]
    uid: int
    gid: int
    workdir: str
    files: list[str]  # the repository's files COPY puts in the working directory
    volumes: list[str]
    command: list[str]
    healthcheck: list[str]
    healthcheck_timeout: float


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction: continuation lines joined, comments dropped (Docker
    drops comment lines inside a continued instruction too)."""
    found, current = [], ""
    for raw in dockerfile.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        keyword, _, arguments = (current + line).partition(" ")
        found.append((keyword.upper(), arguments.strip()))
        current = ""
    return found


def read_image(dockerfile: Path) -> Image:
    env: dict[str, str] = {}
    user, workdir, command, healthcheck = "", "/", [], []
    files: list[str] = []
    volumes: list[str] = []
    timeout = 30.0  # Docker's default
    for keyword, arguments in instructions(dockerfile.read_text()):
        if keyword == "ENV":
            for pair in shlex.split(arguments):
                name, equals, value = pair.partition("=")
                assert equals and "$" not in value, f"ENV {pair!r}: only NAME=value is read here"
                env[name] = value
        elif keyword == "USER":
            user = arguments
        elif keyword == "WORKDIR":
            workdir = arguments
        elif keyword == "COPY":
            *sources, destination = [a for a in shlex.split(arguments) if not a.startswith("--")]
            if destination in (".", "./", workdir, workdir + "/"):
                files += [s for s in sources if (dockerfile.parent / s).is_file()]
        elif keyword == "VOLUME":
            volumes += json.loads(arguments) if arguments.startswith("[") else arguments.split()
        elif keyword == "CMD":
            command = json.loads(arguments)
        elif keyword == "HEALTHCHECK":
            options, _, check = arguments.partition("CMD ")
            healthcheck = json.loads(check)
            match = re.search(r"--timeout=(\d+)s", options)
            timeout = float(match.group(1)) if match else timeout
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and gid.isdigit(), f"USER {user!r}: expected numeric uid:gid"
    return Image(env, int(uid), int(gid), workdir, files, volumes, command, healthcheck, timeout)


# --- docker-compose.yaml -------------------------------------------------------------------------


_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<operator>:?[-?+])(?P<word>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(value: str) -> str:
    """compose's interpolation, with none of the variables set where `docker compose` runs: each
    `${VAR:-default}` and `${VAR-default}` is its default, `${VAR}` and `${VAR:+alternative}`
    are empty, `${VAR:?message}` is an error, `$$` is `$`."""

    def one(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        operator, word = match["operator"] or "", match["word"] or ""
        assert "$" not in word, f"{match[0]}: nested interpolation is not read here"
        assert not operator.endswith("?"), f"compose requires {match['braced']}: {word}"
        return word if operator.endswith("-") else ""

    return _VARIABLE.sub(one, value)


def service_environment(service: Mapping[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    pairs = dict(item.split("=", 1) for item in raw) if isinstance(raw, list) else raw
    assert all(value is not None for value in pairs.values()), "a variable passed from the shell"
    return {name: interpolate(str(value)) for name, value in pairs.items()}


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    read_only: bool


def service_mounts(service: Mapping[str, Any], compose_dir: Path) -> list[Mount]:
    """The service's bind mounts of files (short syntax, `./source:/target[:ro]`)."""
    mounts = []
    for volume in service.get("volumes") or []:
        source, target, *mode = str(volume).split(":")
        assert source.startswith("."), f"{volume}: only bind mounts of the project's files"
        mounts.append(Mount(compose_dir / source, target, mode == ["ro"]))
    return mounts


# --- a container on loopback ---------------------------------------------------------------------


class Filesystem:
    """A container's filesystem as the router sees it, under `path`: the image's working
    directory (root's, read-only), its volumes (the image user's, empty), the service's mounts
    (copies of their sources) and the user's home."""

    def __init__(self, path: Path, image: Image, repo: Path, mounts: list[Mount]) -> None:
        self.path = path
        self.places = [image.workdir, *image.volumes, *(m.target for m in mounts), USER_HOME]
        path.mkdir(mode=0o755)
        for mount in mounts:
            copy = self.host(mount.target)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(mount.source, copy)
            copy.chmod(0o444 if mount.read_only else 0o644)
        for directory in [*image.volumes, USER_HOME]:
            self.host(directory).mkdir(parents=True)
            os.chown(self.host(directory), image.uid, image.gid)
        app = self.host(image.workdir)
        app.mkdir(parents=True)
        for name in image.files:
            shutil.copyfile(repo / name, app / name)
            (app / name).chmod(0o444)
        app.chmod(0o555)

    def host(self, container_path: str) -> Path:
        return self.path / container_path.lstrip("/")

    def translate(self, value: str) -> str:
        """`value`, when it is a path into the container's places, as the same path here."""
        for place in self.places:
            if value == place or value.startswith(place.rstrip("/") + "/"):
                return str(self.host(value))
        return value


def as_user(image: Image, command: list[str]) -> list[str]:
    """`command` as the image's user, with no supplementary groups (the tests run as root)."""
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is required"
    return [setpriv, f"--reuid={image.uid}", f"--regid={image.gid}", "--clear-groups", *command]


@contextlib.contextmanager
def searchable_by_others(*paths: Path) -> Iterator[None]:
    """Every directory from `paths` up to / searchable by other users (o+x) while the block runs,
    as the image's installed packages are to its user: a clone under a private home (a CI
    runner's /root, mode 700) would otherwise keep uid 10001 from the repository's venv. The
    modes are put back afterwards."""
    changed: list[tuple[Path, int]] = []
    try:
        for path in paths:
            for directory in [path, *path.parents]:
                mode = stat.S_IMODE(directory.stat().st_mode)
                if not mode & 0o001:
                    directory.chmod(mode | 0o001)
                    changed.append((directory, mode))
        yield
    finally:
        for directory, mode in reversed(changed):
            directory.chmod(mode)


@dataclass
class Container:
    name: str
    image: Image
    filesystem: Filesystem
    env: dict[str, str]
    process: Process
    http_port: int
    grpc_port: int
    processes: list[int] = field(default_factory=list)

    @property
    def workdir(self) -> Path:
        return self.filesystem.host(self.image.workdir)

    def healthy(self) -> bool:
        """The image's HEALTHCHECK passes, run as Docker runs it: as the image's user, with the
        container's environment, in its working directory."""
        try:
            check = subprocess.run(
                as_user(self.image, self.image.healthcheck),
                env=self.env,
                cwd=self.workdir,
                capture_output=True,
                timeout=self.image.healthcheck_timeout,
            )
        except subprocess.TimeoutExpired:
            return False
        return check.returncode == 0

    def wait_healthy(self) -> None:
        """What compose's `condition: service_healthy` waits for: the image's HEALTHCHECK passes
        (once the replica is ready, which is waited for as an event)."""
        wait_ready(self.process, self.http_port)
        assert self.healthy(), f"{self.name} is ready but the image's HEALTHCHECK fails"
        self.processes = descendants(self.process.popen.pid)

    def stop(self) -> None:
        """SIGTERM, as `docker stop` sends; then every process the container had is gone (one left
        over is killed, and reported)."""
        if self.process.popen.poll() is None:
            self.processes = sorted({*self.processes, *descendants(self.process.popen.pid)})
        self.process.stop(signal.SIGTERM)
        left: list[int] = []

        def all_gone() -> bool:
            left[:] = [pid for pid in self.processes if running(pid)]
            return not left

        try:
            wait_until(all_gone, 10, f"{self.name}'s processes exiting")
        except TimeoutError:
            for pid in left:
                os.kill(pid, signal.SIGKILL)
            raise AssertionError(f"{self.name} left processes running after it stopped: {left}")


def running(pid: int) -> bool:
    """Whether `pid` is a live process (not gone, not a zombie waiting for its parent)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def start_container(
    name: str,
    image: Image,
    filesystem: Filesystem,
    env: Mapping[str, str],
    log_dir: Path,
) -> Container:
    """The image's command, as its user, in its working directory, with `env` (the image's and
    the service's, as the caller made it) translated to this filesystem."""
    full_env = {**BASE_ENV, "HOME": USER_HOME, "HOSTNAME": name, **env}
    full_env = {key: filesystem.translate(value) for key, value in full_env.items()}
    workdir = filesystem.host(image.workdir)
    process = launch(name, as_user(image, image.command), full_env, workdir, log_dir)
    return Container(
        name,
        image,
        filesystem,
        full_env,
        process,
        int(full_env["HTTP_PORT"]),
        int(full_env["GRPC_PORT"]),
    )


def uid_of(pid: int) -> int:
    """The real uid of a running process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise LookupError(pid)
