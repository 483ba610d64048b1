"""``command_log/list|get|export|purge``: filters, paging, replay order, admin only. Both
databases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mailproxy_core.kernel import MailProxy
from mailproxy_core.settings import Settings
from mailproxy_core.testing.client import ApiClient
from mailproxy_core.testing.fakes import TenantTokenPlugin
from mailproxy_core.testing.plugin import ADMIN_TOKEN

T0 = 1_700_000_000


@pytest.fixture
def mp_settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings.from_values(
        db=db_url,
        api_token=ADMIN_TOKEN,
        test_mode=True,
        plugin_sections={"file": {"root": str(tmp_path / "mail-out")}},
    )


@pytest.fixture(autouse=True)
def _plugins(register_plugin: Any) -> None:
    register_plugin(TenantTokenPlugin(), name="test_tenant_token")


async def _seed(mp: MailProxy) -> list[int]:
    """Six entries, one per 100 s from T0, of two tenants and two endpoints."""
    rows = [
        ("POST /tenants/add", "acme"),
        ("POST /accounts/add", "acme"),
        ("POST /tenants/add", "globex"),
        ("POST /messages/add_batch", "acme"),
        ("POST /Accounts/Add", "globex"),
        ("POST /instance/update", None),
    ]
    ids = []
    for index, (endpoint, tenant_id) in enumerate(rows):
        ids.append(
            await mp.repos.command_log.record(
                endpoint=endpoint,
                tenant_id=tenant_id,
                principal="admin",
                payload_json=f'{{"n": {index}}}',
                response_status=200,
                response_body={"ok": True},
                command_ts=T0 + 100 * index,
            )
        )
    return ids


def _ns(entries: list[dict[str, Any]]) -> list[int]:
    return [entry["payload"]["n"] for entry in entries]


async def test_list_returns_entries_oldest_first(
    mp_client: ApiClient, mp_kernel: MailProxy
) -> None:
    ids = await _seed(mp_kernel)
    resp = await mp_client.get("/command_log/list")
    assert resp.status == 200
    assert _ns(resp.json) == [0, 1, 2, 3, 4, 5]
    assert resp.json[0] == {
        "id": ids[0],
        "command_ts": T0,
        "endpoint": "POST /tenants/add",
        "tenant_id": "acme",
        "principal": "admin",
        "payload": {"n": 0},
        "response_status": 200,
        "response_body": {"ok": True},
    }


async def test_list_filters(mp_client: ApiClient, mp_kernel: MailProxy) -> None:
    await _seed(mp_kernel)

    async def ns(**query: Any) -> list[int]:
        resp = await mp_client.get("/command_log/list", **query)
        assert resp.status == 200, resp
        return _ns(resp.json)

    assert await ns(tenant_id="acme") == [0, 1, 3]
    assert await ns(since_ts=T0 + 200) == [2, 3, 4, 5]
    assert await ns(until_ts=T0 + 200) == [0, 1, 2]
    assert await ns(since_ts=T0 + 100, until_ts=T0 + 300) == [1, 2, 3]
    assert await ns(endpoint_filter="accounts/add") == [1, 4]
    assert await ns(endpoint_filter="tenants/") == [0, 2]
    assert await ns(endpoint_filter="%") == []
    assert await ns(tenant_id="globex", endpoint_filter="add") == [2, 4]
    assert await ns(tenant_id="nobody") == []


async def test_list_pages_with_limit_and_offset(mp_client: ApiClient, mp_kernel: MailProxy) -> None:
    await _seed(mp_kernel)
    first = await mp_client.get("/command_log/list", limit=4)
    second = await mp_client.get("/command_log/list", limit=4, offset=4)
    assert _ns(first.json) == [0, 1, 2, 3]
    assert _ns(second.json) == [4, 5]
    for bad in ({"limit": 0}, {"limit": 10_001}, {"offset": -1}):
        resp = await mp_client.get("/command_log/list", **bad)
        assert resp.status == 422, bad
        assert next(iter(bad)) in resp.json["detail"]


async def test_export_is_in_replay_order_with_the_same_filters(
    mp_client: ApiClient, mp_kernel: MailProxy
) -> None:
    await _seed(mp_kernel)
    everything = await mp_client.get("/command_log/export")
    assert everything.status == 200
    assert _ns(everything.json) == [0, 1, 2, 3, 4, 5]
    ids = [entry["id"] for entry in everything.json]
    assert ids == sorted(ids)
    acme = await mp_client.get("/command_log/export", tenant_id="acme", since_ts=T0 + 50)
    assert _ns(acme.json) == [1, 3]
    page = await mp_client.get("/command_log/export", limit=2, offset=1)
    assert _ns(page.json) == [1, 2]


async def test_export_order_follows_recording_not_the_clock(
    mp_client: ApiClient, mp_kernel: MailProxy
) -> None:
    for n, ts in enumerate((T0 + 10, T0)):  # a clock step back between two calls
        await mp_kernel.repos.command_log.record(
            endpoint="POST /instance/update",
            tenant_id=None,
            principal="admin",
            payload_json=f'{{"n": {n}}}',
            response_status=200,
            command_ts=ts,
        )
    assert _ns((await mp_client.get("/command_log/export")).json) == [0, 1]


async def test_get_one_entry_or_404(mp_client: ApiClient, mp_kernel: MailProxy) -> None:
    ids = await _seed(mp_kernel)
    resp = await mp_client.get("/command_log/get", command_id=ids[3])
    assert resp.status == 200
    assert resp.json["endpoint"] == "POST /messages/add_batch"
    missing = await mp_client.get("/command_log/get", command_id=999_999)
    assert missing.status == 404
    assert missing.json == {
        "detail": "command log entry 999999 not found",
        "code": "not_found",
    }
    assert (await mp_client.get("/command_log/get")).status == 422


async def test_purge_removes_older_entries_and_is_itself_recorded(
    mp_client: ApiClient, mp_kernel: MailProxy
) -> None:
    await _seed(mp_kernel)
    resp = await mp_client.post("/command_log/purge", json={"threshold_ts": T0 + 300})
    assert resp.status == 200
    assert resp.json == {"ok": True, "removed": 3}
    remaining = (await mp_client.get("/command_log/list")).json
    assert [entry["payload"] for entry in remaining] == [
        {"n": 3},
        {"n": 4},
        {"n": 5},
        {"threshold_ts": T0 + 300},
    ]
    purge = remaining[-1]
    assert purge["endpoint"] == "POST /command_log/purge"
    assert purge["response_body"] == {"ok": True, "removed": 3}
    again = await mp_client.post("/command_log/purge", json={"threshold_ts": T0 + 300})
    assert again.json == {"ok": True, "removed": 0}


async def test_command_log_reads_are_not_recorded(
    mp_client: ApiClient, mp_kernel: MailProxy
) -> None:
    await _seed(mp_kernel)
    await mp_client.get("/command_log/list")
    await mp_client.get("/command_log/export")
    assert len((await mp_client.get("/command_log/list")).json) == 6


async def test_every_route_is_admin_only(mp_client: ApiClient, mp_kernel: MailProxy) -> None:
    ids = await _seed(mp_kernel)
    tenant = mp_client.as_tenant("acme")
    calls = [
        tenant.get("/command_log/list", tenant_id="acme"),
        tenant.get("/command_log/get", command_id=ids[0]),
        tenant.get("/command_log/export"),
        tenant.post("/command_log/purge", json={"threshold_ts": T0 + 1000}),
    ]
    for call in calls:
        resp = await call
        assert resp.status == 403, resp
        assert resp.json["code"] == "forbidden"
    assert len(await mp_kernel.repos.command_log.list(limit=None)) == 7  # + the refused purge
