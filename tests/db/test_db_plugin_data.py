"""``mp.data``, the plugin data facade, on SQLite and PostgreSQL: a plugin's own tables created by
its migration (foreign keys to core rows cascade), upsert, fetch, execute counts, transactions."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from mailproxy_core import MigrationContext, MigrationSpec, PluginData, Settings, hookimpl
from mailproxy_core.testing.plugin import ADMIN_TOKEN

meta = sa.MetaData()
notes = sa.Table(
    "probe_notes",
    meta,
    sa.Column(
        "tenant_id", sa.Text, sa.ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("address", sa.Text, primary_key=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("hits", sa.Integer, nullable=False, server_default="0"),
)


async def _create(ctx: MigrationContext) -> None:
    await ctx.create_tables(notes)


class ProbePlugin:
    @hookimpl
    def mailproxy_register_migrations(self):
        return [MigrationSpec("probe", 1, "probe notes", _create)]


@pytest.fixture
def mp_settings(tmp_path: Path, db_url: str) -> Settings:
    return Settings.from_values(db=db_url, api_token=ADMIN_TOKEN, test_mode=True)


@pytest.fixture(autouse=True)
def _probe(register_plugin) -> None:
    register_plugin(ProbePlugin(), name="probe")


async def _tenant(client, tenant_id: str) -> None:
    assert (await client.post("/tenants/add", id=tenant_id)).status == 200


async def test_upsert_fetch_and_execute(mp_kernel, mp_client, db_url):
    data: PluginData = mp_kernel.data
    assert data.dialect == ("sqlite" if "postgresql" not in db_url else "postgresql")
    await _tenant(mp_client, "acme")
    await data.upsert(
        notes,
        {"tenant_id": "acme", "address": "a@x.example", "reason": "hard"},
        key=["tenant_id", "address"],
    )
    await data.upsert(
        notes,
        {"tenant_id": "acme", "address": "a@x.example", "reason": "manual"},
        key=["tenant_id", "address"],
    )
    await data.upsert(
        notes,
        {"tenant_id": "acme", "address": "b@x.example", "reason": "soft"},
        key=["tenant_id", "address"],
        update=[],
    )
    await data.upsert(
        notes,
        {"tenant_id": "acme", "address": "b@x.example", "reason": "kept?"},
        key=["tenant_id", "address"],
        update=[],
    )
    rows = await data.fetch_all(
        sa.select(notes.c.address, notes.c.reason).order_by(notes.c.address)
    )
    assert [dict(r) for r in rows] == [
        {"address": "a@x.example", "reason": "manual"},
        {"address": "b@x.example", "reason": "soft"},
    ]
    one = await data.fetch_one(
        "SELECT reason FROM probe_notes WHERE address = :address", {"address": "b@x.example"}
    )
    assert one is not None and one["reason"] == "soft"
    count = await data.fetch_val(
        sa.text("SELECT count(*) FROM probe_notes WHERE tenant_id = :t"), {"t": "acme"}
    )
    assert count == 2
    bound = sa.select(sa.func.count()).select_from(notes).where(notes.c.reason == sa.bindparam("r"))
    assert await data.fetch_val(bound, {"r": "soft"}) == 1
    assert await data.execute(notes.update().values(hits=notes.c.hits + 1)) == 2
    assert await data.execute("DELETE FROM probe_notes WHERE address = :a", {"a": "nobody"}) == 0
    assert await data.execute(notes.delete().where(notes.c.address == "a@x.example")) == 1
    assert await data.fetch_val("SELECT sum(hits) FROM probe_notes") == 1


async def test_transactions_commit_or_roll_back_together(mp_kernel, mp_client):
    data: PluginData = mp_kernel.data
    await _tenant(mp_client, "acme")
    row = {"tenant_id": "acme", "address": "a@x.example", "reason": "r"}
    with pytest.raises(RuntimeError):
        async with data.transaction():
            await data.upsert(notes, row, key=["tenant_id", "address"])
            raise RuntimeError("abort")
    assert await data.fetch_val("SELECT count(*) FROM probe_notes") == 0
    async with data.transaction():
        await data.upsert(notes, row, key=["tenant_id", "address"])
        with pytest.raises(RuntimeError):
            async with data.transaction():  # nested: a savepoint of the open transaction
                await data.execute(notes.update().values(reason="inner"))
                raise RuntimeError("inner only")
    assert await data.fetch_val("SELECT reason FROM probe_notes") == "r"


async def test_foreign_keys_to_core_rows_cascade(mp_kernel, mp_client):
    data: PluginData = mp_kernel.data
    await _tenant(mp_client, "acme")
    await _tenant(mp_client, "globex")
    for tenant_id in ("acme", "globex"):
        await data.upsert(
            notes,
            {"tenant_id": tenant_id, "address": "a@x.example", "reason": "r"},
            key=["tenant_id", "address"],
        )
    assert (await mp_client.post("/tenants/delete", tenant_id="acme")).status == 200
    rows = await data.fetch_all(sa.select(notes.c.tenant_id))
    assert [r["tenant_id"] for r in rows] == ["globex"]
    with pytest.raises(Exception):  # noqa: B017 - the driver's integrity error
        await data.upsert(
            notes,
            {"tenant_id": "nobody", "address": "a", "reason": "r"},
            key=["tenant_id", "address"],
        )


async def test_upsert_names_bad_columns(mp_kernel):
    data: PluginData = mp_kernel.data
    with pytest.raises(ValueError, match=r"no column\(s\) \['colour'\]"):
        await data.upsert(
            notes, {"tenant_id": "a", "address": "b", "colour": "red"}, key=["tenant_id", "address"]
        )
    with pytest.raises(ValueError, match="key column"):
        await data.upsert(notes, {"tenant_id": "a", "reason": "r"}, key=["tenant_id", "address"])
