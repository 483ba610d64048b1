"""Helpers for dispatcher tests: building, enqueueing and inspecting messages over the API."""

from __future__ import annotations

from typing import Any

from mailproxy_core.testing.client import ApiClient


def message(mid: str, **fields: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "id": mid,
        "tenant_id": "acme",
        "account_id": "main",
        "from": "Shop <shop@acme.example>",
        "to": "bob@example.com",
        "subject": f"Order {mid}",
        "body": "Thanks for your order.",
    }
    values.update(fields)
    return values


async def enqueue(client: ApiClient, *messages: dict[str, Any]) -> None:
    """Queue ``messages`` through ``messages/add_batch``, 1,000 per call."""
    for start in range(0, len(messages), 1000):
        chunk = list(messages[start : start + 1000])
        response = await client.post("/messages/add_batch", messages=chunk)
        assert response.status == 200 and response.json["queued"] == len(chunk), response.json


async def history(client: ApiClient, mid: str) -> list[tuple[str, str | None]]:
    got = await client.get("/messages/get", message_id=mid, tenant_id="acme", include_history=True)
    assert got.status == 200, got.json
    return [(e["event_type"], e["description"]) for e in got.json["history"]]


async def status_of(client: ApiClient, mid: str) -> str:
    got = await client.get("/messages/get", message_id=mid, tenant_id="acme")
    return str(got.json["status"])
