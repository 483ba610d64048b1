"""Long work on the event loop, done in slices that hand the loop back to other tasks.

Between two slices the working task *sleeps* for ``PAUSE_SECONDS`` instead of yielding one turn
of the loop (``asyncio.sleep(0)``). A single turn is not enough for the others:

* a request needs twenty to thirty turns of the loop to be read, routed, answered and written
  back, so with one turn per slice it waits behind twenty to thirty slices of the long work;
* a database statement runs in a connection's thread, which needs the GIL to start, to take
  each row and to hand its result back; while the loop thread runs Python code without ever
  blocking, each of those waits for the interpreter's switch interval (5 ms), and the result is
  only seen by the loop after the slice that was running when it arrived.

During the pause the loop blocks in ``select``: threads take the GIL at once, and every other
task moves on by as many turns as it needs. The long work takes about ``PAUSE_SECONDS`` /
``SLICE_SECONDS`` (a tenth) longer; calls served meanwhile wait for about one slice instead of
dozens (see docs/performance.md, "One large request does not hold the others").
"""

from __future__ import annotations

import asyncio
import time

SLICE_SECONDS = 0.01
"""Longest stretch of work between two pauses, unless a caller says otherwise."""

PAUSE_SECONDS = 0.001
"""How long the working task steps aside once its slice is used up."""


class Pacer:
    """Steps aside for ``PAUSE_SECONDS`` once ``slice_seconds`` of work has passed since then.

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
        """Step aside if this slice is used up; return at once otherwise."""
        now = time.perf_counter()
        if now - self._since >= self._slice:
            await asyncio.sleep(PAUSE_SECONDS)
            self._since = time.perf_counter()
