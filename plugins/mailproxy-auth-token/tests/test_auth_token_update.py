"""``instance/update api_token``: a stored admin token set over the API (SQLite + PostgreSQL).

Two apps on one database stand for two processes of one instance.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from quart import Quart

import mailproxy_auth_token.backend
from mailproxy_core import Settings, hash_token
from mailproxy_core.app import create_app, kernel_of

CONFIGURED = "configured-admin-token"
FIRST = "first-api-token-0123456789"
SECOND = "second-api-token-9876543210"


@pytest.fixture
async def two_processes(db_url: str, tmp_path: Path) -> AsyncIterator[tuple[Quart, Quart]]:
    settings = Settings.from_values(db=db_url, api_token=CONFIGURED, test_mode=True)
    one, two = create_app(settings), create_app(settings)
    async with one.test_app(), two.test_app():
        yield one, two


async def status(app: Quart, token: str) -> int:
    response = await app.test_client().get("/instance/get", headers={"X-API-Token": token})
    return response.status_code


async def update(app: Quart, token: str, **body: Any) -> tuple[int, Any]:
    response = await app.test_client().post(
        "/instance/update", json=body, headers={"X-API-Token": token}
    )
    return response.status_code, await response.get_json()


async def test_api_token_works_at_once_in_every_process(
    two_processes: tuple[Quart, Quart],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    one, two = two_processes
    assert await status(two, FIRST) == 401  # remembered as "not the stored token"

    code, body = await update(one, CONFIGURED, api_token="too-short")
    assert code == 422 and body["errors"][0]["field"] == "api_token"
    assert "16" in body["detail"] and "too-short" not in str(body)

    code, body = await update(one, CONFIGURED, api_token=FIRST, name="relay")
    assert code == 200 and body["name"] == "relay"
    assert FIRST not in str(body) and "api_token" not in body
    assert await status(two, FIRST) == 200  # at once, in the other process
    assert await status(one, FIRST) == 200
    assert await status(two, CONFIGURED) == 200  # the configured token stays valid
    stored = await kernel_of(one).admin_token_hash()
    assert stored == hash_token(FIRST)

    # A later token replaces it; the replaced one is refused once the remembered hash is stale.
    monkeypatch.setattr(mailproxy_auth_token.backend, "HASH_CACHE_SECONDS", 0.0)
    code, _ = await update(two, FIRST, api_token=SECOND)
    assert code == 200
    assert await status(one, SECOND) == 200
    assert await status(one, FIRST) == 401 and await status(two, FIRST) == 401
    assert await status(one, CONFIGURED) == 200

    log = await one.test_client().get(
        "/command_log/list",
        query_string={"endpoint_filter": "instance/update"},
        headers={"X-API-Token": CONFIGURED},
    )
    entries = await log.get_json()
    assert [entry["payload"].get("api_token") for entry in entries] == ["***"] * 3
    everything = str(entries) + caplog.text
    for token in (FIRST, SECOND, "too-short"):
        assert token not in everything
