"""Batch suspension: tenants/suspend_batch|activate_batch|get_suspended_batches and
instance/suspend|activate (SQLite + PostgreSQL)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from mailproxy_core.entities.batches import suspended_after_activate, suspended_after_suspend
from mailproxy_core.errors import Conflict
from mailproxy_core.settings import Settings
from mailproxy_core.testing.client import ApiClient
from mailproxy_core.testing.fakes import TenantTokenPlugin
from mailproxy_core.testing.plugin import ADMIN_TOKEN

ROUTES = {
    "tenants": ("/tenants/suspend_batch", "/tenants/activate_batch"),
    "instance": ("/instance/suspend", "/instance/activate"),
}


@pytest.fixture
def mp_settings(db_url: str, tmp_path: Path) -> Settings:
    """An instance on SQLite or PostgreSQL."""
    return Settings.from_values(
        db=db_url,
        api_token=ADMIN_TOKEN,
        test_mode=True,
        plugin_sections={"file": {"root": str(tmp_path / "mail-out")}},
    )


@pytest.fixture(autouse=True)
def _plugins(register_plugin: Any) -> None:
    register_plugin(TenantTokenPlugin(), "tenant_tokens")


@pytest.fixture
async def admin(mp_client: ApiClient) -> ApiClient:
    """The admin client, with tenants ``acme`` and ``globex`` created."""
    for tenant_id in ("acme", "globex"):
        assert (await mp_client.post("/tenants/add", json={"id": tenant_id})).status == 200
    return mp_client


def test_rules_without_a_database() -> None:
    assert suspended_after_suspend([], "b") == ["b"]
    assert suspended_after_suspend(["c", "a"], "b") == ["a", "b", "c"]
    assert suspended_after_suspend(["a"], None) == ["*"]
    assert suspended_after_suspend(["*"], "a") == ["*"]
    assert suspended_after_activate("t", ["a", "b"], "a") == ["b"]
    assert suspended_after_activate("t", ["a"], "zzz") == ["a"]
    assert suspended_after_activate("t", ["*"], None) == []
    with pytest.raises(Conflict, match="every batch of tenant 't' is suspended"):
        suspended_after_activate("t", ["*"], "a")


@pytest.mark.parametrize("entity", ["tenants", "instance"])
async def test_suspend_and_activate(admin: ApiClient, entity: str) -> None:
    suspend, activate = ROUTES[entity]

    async def call(path: str, batch_code: str | None = None) -> list[str]:
        body: dict[str, Any] = {"tenant_id": "acme"}
        if batch_code is not None:
            body["batch_code"] = batch_code
        response = await admin.post(path, json=body)
        assert response.status == 200, response
        assert response.json["ok"] is True and response.json["tenant_id"] == "acme"
        return list(response.json["suspended_batches"])

    assert await call(suspend, "b2") == ["b2"]
    assert await call(suspend, "b1") == ["b1", "b2"]
    assert await call(suspend, "b1") == ["b1", "b2"]
    assert await call(activate, "b2") == ["b1"]
    assert await call(activate, "never-suspended") == ["b1"]
    assert await call(suspend) == ["*"]
    assert await call(suspend, "b3") == ["*"]

    refused = await admin.post(activate, json={"tenant_id": "acme", "batch_code": "b1"})
    assert refused.status == 409 and refused.json["code"] == "conflict"
    assert "activate without batch_code" in refused.json["detail"]
    state = await admin.get("/tenants/get_suspended_batches", tenant_id="acme")
    assert state.json == {"ok": True, "tenant_id": "acme", "suspended_batches": ["*"]}
    assert (await admin.get("/tenants/get", tenant_id="acme")).json["suspended_batches"] == ["*"]

    assert await call(activate) == []
    assert await call(suspend, "*") == ["*"]
    assert await call(activate, "*") == []
    other = await admin.get("/tenants/get_suspended_batches", tenant_id="globex")
    assert other.json["suspended_batches"] == []


@pytest.mark.parametrize("entity", ["tenants", "instance"])
async def test_errors(admin: ApiClient, entity: str) -> None:
    suspend, activate = ROUTES[entity]
    for path in (suspend, activate):
        ghost = await admin.post(path, json={"tenant_id": "ghost", "batch_code": "b"})
        assert ghost.status == 404 and ghost.json["detail"] == "tenant 'ghost' not found"
        empty = await admin.post(path, json={"tenant_id": "acme", "batch_code": " "})
        assert empty.status == 422 and empty.json["errors"][0]["field"] == "batch_code"
        missing = await admin.post(path, json={})
        assert missing.status == 422 and missing.json["errors"][0]["field"] == "tenant_id"
    ghost = await admin.get("/tenants/get_suspended_batches", tenant_id="ghost")
    assert ghost.status == 404 and ghost.json["detail"] == "tenant 'ghost' not found"


async def test_scoping(admin: ApiClient) -> None:
    acme = admin.as_tenant("acme")
    own = await acme.post("/tenants/suspend_batch", json={"batch_code": "news"})
    assert own.status == 200 and own.json["suspended_batches"] == ["news"]
    assert (await acme.get("/tenants/get_suspended_batches")).json["suspended_batches"] == ["news"]
    assert (await acme.post("/tenants/activate_batch", json={})).json["suspended_batches"] == []
    foreign = [
        acme.post("/tenants/suspend_batch", json={"tenant_id": "globex"}),
        acme.post("/tenants/activate_batch", json={"tenant_id": "globex"}),
        acme.get("/tenants/get_suspended_batches", tenant_id="globex"),
        acme.post("/instance/suspend", json={"tenant_id": "acme"}),
        acme.post("/instance/activate", json={"tenant_id": "acme"}),
    ]
    for call in foreign:
        response = await call
        assert response.status == 403 and response.json["code"] == "forbidden"
    state = await admin.get("/tenants/get_suspended_batches", tenant_id="globex")
    assert state.json["suspended_batches"] == []


async def test_concurrent_suspensions_are_all_kept(admin: ApiClient) -> None:
    codes = [f"b{index:02d}" for index in range(12)]
    responses = await asyncio.gather(
        *(
            admin.post("/tenants/suspend_batch", json={"tenant_id": "acme", "batch_code": code})
            for code in codes
        )
    )
    assert all(response.status == 200 for response in responses)
    state = await admin.get("/tenants/get_suspended_batches", tenant_id="acme")
    assert state.json["suspended_batches"] == codes
