"""Long work on the event loop, done in slices that hand the loop back to other tasks."""

from __future__ import annotations

import asyncio
import time

SLICE_SECONDS = 0.01
"""Longest stretch of work between two yields to the event loop, unless a caller says otherwise."""


class Pacer:
    """Yields to the event loop once ``slice_seconds`` of work has passed since the last time.

    Example::

        pacer = Pacer()
        for item in many_items:
            check(item)
            await pacer.pause()
    """

    def __init__(self, slice_seconds: float | None = None) -> None:
        self._slice = SLICE_SECONDS if slice_seconds is None else slice_seconds
        self._since = time.perf_counter()

    async def pause(self) -> None:
        """Yield to the loop if this slice is used up; return at once otherwise."""
        now = time.perf_counter()
        if now - self._since >= self._slice:
            await asyncio.sleep(0)
            self._since = time.perf_counter()
