"""Makes the example plugin importable where it is not installed (all but tox env example)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

if importlib.util.find_spec("mailproxy_example_relay") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
