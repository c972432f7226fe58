"""`ai-router check-config [PATH]`: validate a config file without starting anything.

Every problem is printed, one per line, in the format the router stops with
(`<file>: <key.path>: <what is wrong>`), and the exit status is 1; a valid file gets a one-line
summary and 0. The environment's overrides apply as they would at start (a bad GRPC_PORT is a
problem), but a provider key that is not set is not: the router starts without it, so the
summary only names the variables still to set.
"""

from __future__ import annotations

import os

from ai_router.config import ConfigError, Settings, check_settings
from ai_router.wire import bedrock_converse as bedrock

EXIT_INVALID = 1


def run(path: str | None) -> int:
    """Check `path` (else $CONFIG_PATH, else ./config.yaml); print the verdict."""
    try:
        settings = check_settings(path)
    except ConfigError as error:
        print(error)
        print(f"{error.source}: {_count(len(error.problems), 'problem')}")
        return EXIT_INVALID
    print(summary(settings))
    return 0


def summary(settings: Settings) -> str:
    providers = ", ".join(settings.providers)
    aliases = ", ".join(settings.models)
    line = (
        f"{settings.source}: OK: {_count(len(settings.providers), 'provider')} ({providers}), "
        f"{_count(len(settings.models), 'alias', 'aliases')}{f' ({aliases})' if aliases else ''}"
    )
    unset = [
        bedrock.MISSING_CREDENTIALS if p.type == "bedrock" else p.api_key_env
        for p in settings.providers.values()
        if p.api_key is None and not (p.type == "bedrock" and bedrock.credentials_in_environment(os.environ))
    ]
    if unset:
        line += (
            f"; not set: {', '.join(unset)} (their providers answer 503 / FAILED_PRECONDITION "
            "until set)"
        )
    return line


def _count(number: int, singular: str, plural: str = "") -> str:
    return f"{number} {singular if number == 1 else plural or singular + 's'}"
