"""Where named instances live: ``$MAILPROXY_HOME``, else ``~/.mail-proxy``."""

from __future__ import annotations

import os
from pathlib import Path


def home_dir() -> Path:
    """The directory holding one sub-directory per named instance."""
    configured = os.environ.get("MAILPROXY_HOME")
    return Path(configured).expanduser() if configured else Path.home() / ".mail-proxy"
