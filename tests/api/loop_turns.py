"""Count the turns another task gets on the event loop while some work is awaited."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def with_turns_counted(work: Awaitable[T]) -> tuple[T, int]:
    """Await ``work`` while another task counts its own turns of the loop; return both.

    Work done in one piece gives the other task no turn at all; work that hands the loop back
    between pieces gives it at least one per piece.
    """
    turns = 0
    running = True

    async def another_task() -> None:
        nonlocal turns
        while running:
            turns += 1
            await asyncio.sleep(0)

    other = asyncio.create_task(another_task())
    await asyncio.sleep(0)  # the other task is running
    before = turns
    try:
        result = await work
        during = turns - before
    finally:
        running = False
        await other
    return result, during
