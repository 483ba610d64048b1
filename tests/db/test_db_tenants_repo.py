"""Basic tenant CRUD through TenantsRepo."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from mailproxy_core.db.engine import Database
from mailproxy_core.db.repos import Repos
from mailproxy_core.db.schema import accounts
from mailproxy_core.errors import Conflict, NotFound


async def test_add_get_list_round_trip(database: Database) -> None:
    repo = Repos(database).tenants
    added = await repo.add(
        "acme",
        name="ACME",
        client_base_url="https://acme.test",
        client_auth={"method": "bearer", "token": "ENC:abc"},
        rate_limits={"per_minute": 10},
    )
    assert added["id"] == "acme" and added["name"] == "ACME"
    assert added["client_auth"] == {"method": "bearer", "token": "ENC:abc"}
    assert added["rate_limits"] == {"per_minute": 10}
    assert added["active"] is True and added["reporter"] == "http"
    assert added["suspended_batches"] == [] and added["large_file_config"] is None
    assert await repo.get("acme") == added
    assert await repo.get("nobody") is None

    await repo.add("globex", active=False)
    assert [t["id"] for t in await repo.list()] == ["acme", "globex"]
    assert [t["id"] for t in await repo.list(active_only=True)] == ["acme"]


async def test_add_twice_is_a_conflict(database: Database) -> None:
    repo = Repos(database).tenants
    await repo.add("acme", name="first")
    with pytest.raises(Conflict, match="tenant 'acme' already exists"):
        await repo.add("acme", name="second")
    assert (await repo.get("acme"))["name"] == "first"  # type: ignore[index]


async def test_update_sets_fields_and_json(database: Database) -> None:
    repo = Repos(database).tenants
    await repo.add("acme", client_auth={"user": "u"})
    updated = await repo.update(
        "acme", suspended_batches=["*"], client_auth=None, active=False, reporter="custom"
    )
    assert updated["suspended_batches"] == ["*"] and updated["client_auth"] is None
    assert updated["active"] is False and updated["reporter"] == "custom"
    assert await repo.get("acme") == updated
    with pytest.raises(NotFound, match="tenant 'nobody' not found"):
        await repo.update("nobody", name="x")


async def test_programming_errors_are_type_errors(database: Database) -> None:
    repo = Repos(database).tenants
    with pytest.raises(TypeError, match="unknown tenant field"):
        await repo.add("acme", colour="red")
    await repo.add("acme")
    with pytest.raises(TypeError, match="cannot be None"):
        await repo.update("acme", active=None)


async def test_delete_cascades_to_accounts(database: Database) -> None:
    repo = Repos(database).tenants
    await repo.add("acme")
    await database.execute(
        accounts.insert().values(pk="p1", tenant_id="acme", id="a", created_at=0, updated_at=0)
    )
    assert await repo.delete("acme") is True
    assert await repo.delete("acme") is False
    assert await database.fetch_val(sa.select(sa.func.count()).select_from(accounts)) == 0
