"""An instance in test mode on SQLite and PostgreSQL, with tenants sending through the ``null``
transport (the receipt path needs sent messages, not a particular transport)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from mailproxy_core import Settings
from mailproxy_core.testing.client import ApiClient
from mailproxy_core.testing.plugin import ADMIN_TOKEN


@pytest.fixture
def mp_settings(tmp_path: Path, db_url: str) -> Settings:
    return Settings.from_values(
        db=db_url,
        api_token=ADMIN_TOKEN,
        test_mode=True,
        plugin_sections={"file": {"root": str(tmp_path / "mail-out")}},
    )


@pytest.fixture
def add_tenant(mp_client: ApiClient) -> Callable[..., Awaitable[None]]:
    """``await add_tenant(id)``: a tenant with accounts ``main`` and ``other`` (``null``)."""

    async def add(tenant_id: str, **fields: Any) -> None:
        added = await mp_client.post("/tenants/add", json={"id": tenant_id, **fields})
        assert added.status == 200, added.json
        for account_id in ("main", "other"):
            account = await mp_client.post(
                "/accounts/add",
                json={
                    "id": account_id,
                    "tenant_id": tenant_id,
                    "host": "null.invalid",
                    "port": 25,
                    "transport": "null",
                },
            )
            assert account.status == 200, account.json

    return add
