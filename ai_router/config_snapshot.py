"""The config a gunicorn master validated, for the workers it forks.

On SIGHUP, gunicorn's master re-reads gunicorn.conf.py and replaces its workers. The master
validates config.yaml and, only when it is valid, copies exactly the text it validated to a
snapshot, which new workers load; an invalid file is logged and the snapshot, so the running
config, stays. (`ai-router serve` reloads its workers in place instead: reload.py; it also names
the snapshot's path, in a directory of its own that it removes when it exits.) Nothing here
imports a provider SDK, nor prometheus_client: the master never serves, and its workers must
import prometheus_client after PROMETHEUS_MULTIPROC_DIR is set.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from ai_router.config import (
    ConfigError,
    Settings,
    load_settings,
    parse_config,
    read_config_text,
    settings_from_mapping,
)

log = logging.getLogger(__name__)

SNAPSHOT_VARIABLE = "AI_ROUTER_CONFIG_SNAPSHOT"
# Set by `ai-router serve` to the PROMETHEUS_MULTIPROC_DIR it has emptied for gunicorn's workers
# and its gRPC server together: gunicorn must not empty it again, the gRPC server may be writing.
SHARED_METRICS_VARIABLE = "AI_ROUTER_SHARED_METRICS_DIR"
# The temporary files and directories gunicorn's master made for itself (when nobody named them),
# removed as it exits. In the environment, since the master re-reads gunicorn.conf.py on SIGHUP.
MADE_VARIABLE = "AI_ROUTER_MADE_FILES"


def made_here(path: str) -> str:
    """Record `path` as the master's own, to be removed by `remove_made` as it exits."""
    made = os.environ.get(MADE_VARIABLE)
    os.environ[MADE_VARIABLE] = f"{made}{os.pathsep}{path}" if made else path
    return path


def remove_made() -> None:
    """For gunicorn's master as it exits: remove what it made (`ai-router serve` names both the
    snapshot and the metrics directory, and removes them itself)."""
    for path in filter(None, os.environ.pop(MADE_VARIABLE, "").split(os.pathsep)):
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            Path(path).unlink(missing_ok=True)


def snapshot_settings() -> Settings:
    """For gunicorn's master, at start and on every SIGHUP: validate CONFIG_PATH and snapshot it;
    when it is invalid on a reload, keep (and return) the last good snapshot. At start an
    invalid file raises ConfigError: there is nothing to keep."""
    source = os.environ.get("CONFIG_PATH") or "config.yaml"
    snapshot = os.environ.get(SNAPSHOT_VARIABLE)
    try:
        text = read_config_text(source)
        settings = settings_from_mapping(parse_config(text, source), os.environ, source)
    except ConfigError as error:
        if snapshot is None or not Path(snapshot).is_file():
            raise
        log.error("config rejected, the running config stays: %s", error)
        return load_settings(snapshot)
    if snapshot is None:
        handle, snapshot = tempfile.mkstemp(prefix="ai-router-config-", suffix=".yaml")
        os.close(handle)
        os.environ[SNAPSHOT_VARIABLE] = made_here(snapshot)  # inherited by the workers it forks
    Path(snapshot).write_text(text, encoding="utf-8")
    return settings


def worker_settings() -> Settings:
    """For each gunicorn worker: the snapshot its master validated (or CONFIG_PATH, when run
    without one)."""
    return load_settings(os.environ.get(SNAPSHOT_VARIABLE) or None)

