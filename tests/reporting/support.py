"""Helpers for reporting tests: messages of any tenant, waiting, the loop's state (enqueueing
as the dispatcher tests do)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from mailproxy_core.dispatch.reporting import ReportingLoop, reporting_loop
from mailproxy_core.kernel import MailProxy
from mailproxy_core.testing.client import ApiClient
from tests.dispatch.support import enqueue as enqueue  # re-exported for the reporting tests
from tests.dispatch.support import message as dispatch_message


def message(tenant_id: str, mid: str, **fields: Any) -> dict[str, Any]:
    return dispatch_message(mid, tenant_id=tenant_id, **{"from": "shop@acme.example", **fields})


async def history(client: ApiClient, tenant_id: str, mid: str) -> list[dict[str, Any]]:
    got = await client.get(
        "/messages/get", message_id=mid, tenant_id=tenant_id, include_history=True
    )
    assert got.status == 200, got.json
    return list(got.json["history"])


async def wait_for(condition: Callable[[], bool], within: float = 10.0) -> None:
    """Wait until ``condition()`` holds; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def wait_for_async(condition: Callable[[], Any], within: float = 10.0) -> None:
    """Like ``wait_for`` with an async ``condition``."""
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def loop_of(mp: MailProxy, within: float = 5.0) -> ReportingLoop:
    """The running reporting loop of ``mp`` (it may take a moment to start)."""
    deadline = time.monotonic() + within
    while (loop := reporting_loop(mp)) is None:
        if time.monotonic() > deadline:
            raise AssertionError("the reporting loop is not running")
        await asyncio.sleep(0.01)
    return loop


async def all_reported(mp: MailProxy, tenant_id: str) -> bool:
    """Whether the tenant has no unreported event left."""
    return not await mp.repos.events.unreported(tenant_id, 1)
