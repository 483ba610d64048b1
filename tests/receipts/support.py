"""Helpers of the receipt tests: queue messages over the API, read their history."""

from __future__ import annotations

from typing import Any

from mailproxy_core.testing.client import ApiClient


def message(tenant_id: str, mid: str, **fields: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "id": mid,
        "tenant_id": tenant_id,
        "account_id": "main",
        "from": "Shop <shop@acme.example>",
        "to": "bob@example.com",
        "subject": f"Order {mid}",
        "body": "Thanks for your order.",
    }
    values.update(fields)
    return values


async def enqueue(client: ApiClient, *messages: dict[str, Any]) -> None:
    response = await client.post("/messages/add_batch", messages=list(messages))
    assert response.status == 200 and response.json["queued"] == len(messages), response.json


async def get_message(client: ApiClient, tenant_id: str, mid: str) -> dict[str, Any]:
    got = await client.get(
        "/messages/get", message_id=mid, tenant_id=tenant_id, include_history=True
    )
    assert got.status == 200, got.json
    return dict(got.json)
