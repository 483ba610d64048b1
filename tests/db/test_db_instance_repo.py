"""The instance singleton through InstanceRepo and the Repos container."""

from __future__ import annotations

import asyncio

import pytest

from mailproxy_core.db.engine import Database
from mailproxy_core.db.repos import Repos
from mailproxy_core.db.repos.instance import InstanceRepo
from mailproxy_core.db.schema import instance
from mailproxy_core.errors import InvalidInput


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> float:
        return float(self.now)


async def test_fresh_instance_has_defaults_and_no_token(database: Database) -> None:
    repos = Repos(database)
    row = await repos.instance.get()
    assert row["name"] == "mail-proxy" and row["edition"] == "ce" and row["config"] == {}
    assert isinstance(row["created_at"], int) and row["updated_at"] >= row["created_at"]
    assert "admin_token_hash" not in row
    assert await repos.instance.get_admin_token_hash() is None


async def test_update_round_trip_merges_config(database: Database) -> None:
    clock = Clock(1_800_000_000)
    repo = InstanceRepo(database, clock=clock)
    updated = await repo.update(name="relay-eu", config={"region": "eu", "limits": {"a": 1}})
    assert updated["name"] == "relay-eu" and updated["updated_at"] == 1_800_000_000
    clock.now += 10
    updated = await repo.update(edition="ee", config={"limits": {"b": 2}, "region": None, "x": [1]})
    assert updated["edition"] == "ee" and updated["name"] == "relay-eu"
    assert updated["config"] == {"limits": {"b": 2}, "x": [1]}
    assert updated["updated_at"] == 1_800_000_010
    assert await InstanceRepo(database).get() == updated


async def test_concurrent_config_merges_lose_nothing(database: Database) -> None:
    repo = InstanceRepo(database)
    await asyncio.gather(*(repo.update(config={f"k{i}": i}) for i in range(8)))
    assert (await repo.get())["config"] == {f"k{i}": i for i in range(8)}


@pytest.mark.parametrize(
    "fields", [{"name": ""}, {"edition": "  "}, {"config": ["not", "an", "object"]}]
)
async def test_invalid_updates_are_rejected(database: Database, fields: dict) -> None:
    with pytest.raises(InvalidInput):
        await InstanceRepo(database).update(**fields)
    assert (await InstanceRepo(database).get())["name"] == "mail-proxy"


async def test_admin_token_hash_round_trip(database: Database) -> None:
    repo = InstanceRepo(database)
    await repo.set_admin_token_hash("hash-1")
    assert await repo.get_admin_token_hash() == "hash-1"
    assert not await repo.set_admin_token_hash_if_unset("hash-2")
    await repo.set_admin_token_hash(None)
    assert await repo.get_admin_token_hash() is None


async def test_only_one_first_start_token_wins(database: Database) -> None:
    repo = InstanceRepo(database)
    won = await asyncio.gather(*(repo.set_admin_token_hash_if_unset(f"h{i}") for i in range(5)))
    assert won.count(True) == 1
    assert await repo.get_admin_token_hash() == f"h{won.index(True)}"


async def test_missing_row_is_recreated(database: Database) -> None:
    await database.execute(instance.delete())
    repo = InstanceRepo(database)
    assert await repo.get_admin_token_hash() is None
    assert (await repo.get())["name"] == "mail-proxy"
    await database.execute(instance.delete())
    await repo.set_admin_token_hash("h")
    assert await repo.get_admin_token_hash() == "h"
