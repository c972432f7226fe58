"""Process-wide logging setup, shared by every entry point."""

from __future__ import annotations

import logging
import os

FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


def configure_logging() -> None:
    level = os.environ.get("LOG_LEVEL", "INFO").upper()
    logging.basicConfig(level=level, format=FORMAT)
    # The SDKs' HTTP client logs every request at INFO; that is noise at a gateway's volume.
    logging.getLogger("httpx2").setLevel(logging.WARNING)
