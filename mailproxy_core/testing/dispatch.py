"""Driving the dispatcher from tests (test mode: it runs only when asked)."""

from __future__ import annotations

import asyncio

from ..kernel import MailProxy


async def dispatch_now(mp: MailProxy, within: float = 30.0) -> None:
    """Ask the dispatcher to send everything ready (``run_now``) and wait until it is idle."""
    deadline = asyncio.get_running_loop().time() + within
    while mp.dispatcher is None:  # the background task may not have started yet
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the dispatcher is not running")
        await asyncio.sleep(0.01)
    dispatcher = mp.dispatcher
    dispatcher.idle.clear()
    mp.wake_dispatcher(run_now=True)
    await asyncio.wait_for(dispatcher.idle.wait(), within)
