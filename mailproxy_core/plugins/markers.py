"""pluggy markers of the ``mailproxy`` project: ``hookspec`` (kernel), ``hookimpl`` (plugins)."""

from __future__ import annotations

import pluggy

PROJECT = "mailproxy"
ENTRY_POINT_GROUP = "mailproxy"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
