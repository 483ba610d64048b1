"""Helpers for reporting tests: messages, enqueueing, waiting, the loop's state."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from mailproxy_core.dispatch.reporting import ReportingLoop, reporting_loop
from mailproxy_core.kernel import MailProxy
from mailproxy_core.testing.client import ApiClient


def message(tenant_id: str, mid: str, **fields: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "id": mid,
        "tenant_id": tenant_id,
        "account_id": "main",
        "from": "shop@acme.example",
        "to": "bob@example.com",
        "subject": f"Order {mid}",
        "body": "Thanks for your order.",
    }
    values.update(fields)
    return values


async def enqueue(client: ApiClient, *messages: dict[str, Any]) -> None:
    for start in range(0, len(messages), 1000):
        chunk = list(messages[start : start + 1000])
        response = await client.post("/messages/add_batch", messages=chunk)
        assert response.status == 200 and response.json["queued"] == len(chunk), response.json


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
