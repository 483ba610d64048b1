"""Driving receipt handlers from tests: poll one now and wait for that poll to finish."""

from __future__ import annotations

import asyncio

from ..kernel import MailProxy
from ..models import ReceiptHandlerStatus


async def poll_receipts_now(mp: MailProxy, name: str, within: float = 30.0) -> ReceiptHandlerStatus:
    """Ask the receipt loop of ``mp`` to poll handler ``name`` now and wait until that poll
    finished (successfully or not); returns the handler's status afterwards.

    For a ``serve`` kernel that polls the handler (in tests: the only process). Raises
    ``AssertionError`` when the loop is not running, the handler is unknown or the poll does not
    finish within ``within`` seconds.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while mp.receipt_loop is None:  # the background task may not have started yet
        if loop.time() > deadline:
            raise AssertionError("the receipt loop is not running (serve role only)")
        await asyncio.sleep(0.01)
    state = mp.receipt_loop.states.get(name)
    if state is None:
        raise AssertionError(f"no receipt handler named {name!r} is registered")
    before = state.polls
    mp.request_receipt_poll(name)
    while state.polls == before:
        if loop.time() > deadline:
            raise AssertionError(f"receipt handler {name!r} did not poll within {within:g} s")
        await asyncio.sleep(0.01)
    status = mp.receipt_handler_status(name)
    assert status is not None
    return status
