"""``instance/get_sync_status`` and the ``tenant_sync_state`` repository. Both databases."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from mailproxy_core.db.engine import Database
from mailproxy_core.db.repos.sync_state import MAX_ERROR_LENGTH, SyncStateRepo
from mailproxy_core.db.repos.tenants import TenantsRepo
from mailproxy_core.entities.instance_sync import next_sync_ts
from mailproxy_core.kernel import MailProxy
from mailproxy_core.settings import Settings
from mailproxy_core.testing.client import ApiClient
from mailproxy_core.testing.fakes import TenantTokenPlugin
from mailproxy_core.testing.plugin import ADMIN_TOKEN

INTERVAL = 60.0


@pytest.fixture
def mp_settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings.from_values(
        db=db_url,
        api_token=ADMIN_TOKEN,
        test_mode=True,
        report_interval=INTERVAL,
        plugin_sections={"file": {"root": str(tmp_path / "mail-out")}},
    )


@pytest.fixture(autouse=True)
def _plugins(register_plugin: Any) -> None:
    register_plugin(TenantTokenPlugin(), name="test_tenant_token")


async def _tenants(mp: MailProxy) -> None:
    await mp.repos.tenants.add("acme", name="Acme", client_base_url="https://acme.example")
    await mp.repos.tenants.add("globex", name="Globex", active=False)


def _by_id(resp: Any) -> dict[str, dict[str, Any]]:
    assert resp.status == 200, resp
    assert resp.json["ok"] is True
    return {row["id"]: row for row in resp.json["tenants"]}


async def test_no_state_yet_means_never_synced_and_due_now(
    mp_client: ApiClient, mp_kernel: MailProxy
) -> None:
    await _tenants(mp_kernel)
    before = int(time.time())
    resp = await mp_client.get("/instance/get_sync_status")
    rows = _by_id(resp)
    assert [row["id"] for row in resp.json["tenants"]] == ["acme", "globex"]
    assert resp.json["sync_interval_seconds"] == 60
    acme = rows["acme"]
    assert acme.keys() == {
        "id",
        "name",
        "active",
        "client_base_url",
        "last_sync_ts",
        "next_sync_due",
        "next_sync_ts",
        "in_dnd",
        "dnd_until",
        "failures",
        "retry_at",
        "last_error",
    }
    assert acme["name"] == "Acme"
    assert acme["active"] is True
    assert acme["client_base_url"] == "https://acme.example"
    assert acme["last_sync_ts"] is None
    assert acme["next_sync_due"] is True
    assert before <= acme["next_sync_ts"] <= int(time.time())
    assert acme["in_dnd"] is False
    assert acme["dnd_until"] is None and acme["failures"] == 0
    assert acme["retry_at"] is None and acme["last_error"] is None
    assert rows["globex"]["active"] is False


async def test_empty_instance(mp_client: ApiClient) -> None:
    resp = await mp_client.get("/instance/get_sync_status")
    assert resp.status == 200
    assert resp.json == {"ok": True, "tenants": [], "sync_interval_seconds": 60}


async def test_status_after_state_is_written(mp_client: ApiClient, mp_kernel: MailProxy) -> None:
    await _tenants(mp_kernel)
    now = int(time.time())
    sync = mp_kernel.repos.sync_state
    await sync.record_success("acme", now - 10, next_sync_after=now + 3600)
    await sync.record_success("globex", now - 10)
    rows = _by_id(await mp_client.get("/instance/get_sync_status"))
    assert rows["acme"]["last_sync_ts"] == now - 10
    assert rows["acme"]["in_dnd"] is True and rows["acme"]["dnd_until"] == now + 3600
    assert rows["acme"]["next_sync_due"] is False
    assert rows["acme"]["next_sync_ts"] == now + 3600
    assert rows["globex"]["in_dnd"] is False
    assert rows["globex"]["next_sync_due"] is False
    assert rows["globex"]["next_sync_ts"] == now - 10 + int(INTERVAL)

    await sync.record_failure("globex", now, now + 120, "HTTP 503 from client")
    await sync.clear_dnd("acme")
    rows = _by_id(await mp_client.get("/instance/get_sync_status"))
    assert rows["globex"]["last_sync_ts"] == now - 10
    assert rows["globex"]["next_sync_ts"] == now + 120
    assert rows["globex"]["failures"] == 1 and rows["globex"]["retry_at"] == now + 120
    assert rows["globex"]["last_error"] == "HTTP 503 from client"
    assert rows["acme"]["in_dnd"] is False and rows["acme"]["dnd_until"] is None
    assert rows["acme"]["next_sync_ts"] == now - 10 + int(INTERVAL)

    await sync.record_success("acme", now - 600)  # interval long elapsed
    await sync.record_failure("globex", now - 5, now - 1, "timeout")  # retry time has come
    rows = _by_id(await mp_client.get("/instance/get_sync_status"))
    assert rows["acme"]["next_sync_due"] is True
    assert rows["globex"]["next_sync_due"] is True
    assert rows["globex"]["failures"] == 2 and rows["globex"]["last_error"] == "timeout"
    assert rows["acme"]["failures"] == 0 and rows["acme"]["retry_at"] is None


async def test_a_tenant_sees_only_itself(mp_client: ApiClient, mp_kernel: MailProxy) -> None:
    await _tenants(mp_kernel)
    await mp_kernel.repos.sync_state.record_success("globex", int(time.time()))
    resp = await mp_client.as_tenant("globex").get("/instance/get_sync_status")
    assert resp.status == 200
    assert [row["id"] for row in resp.json["tenants"]] == ["globex"]
    assert resp.json["tenants"][0]["last_sync_ts"] is not None
    unknown = await mp_client.as_tenant("initech").get("/instance/get_sync_status")
    assert unknown.json == {"ok": True, "tenants": [], "sync_interval_seconds": 60}


async def test_the_route_needs_credentials(mp_client: ApiClient) -> None:
    resp = await mp_client.with_token(None).get("/instance/get_sync_status")
    assert resp.status == 401


def test_next_sync_ts_rules() -> None:
    now = 1_000_000
    assert next_sync_ts(None, now, 300) == now
    idle = {"last_sync_ts": now - 100, "next_sync_after": None, "failures": 0}
    assert next_sync_ts(idle, now, 300) == now + 200
    assert next_sync_ts(idle, now, 0.5) == now - 99  # overdue; fractions round up
    dnd = {**idle, "next_sync_after": now + 1000}
    assert next_sync_ts(dnd, now, 300) == now + 1000
    past_dnd = {**idle, "next_sync_after": now - 50}
    assert next_sync_ts(past_dnd, now, 300) == now + 200
    failing = {**dnd, "failures": 2, "next_attempt_ts": now + 40}
    assert next_sync_ts(failing, now, 300) == now + 40
    never_succeeded = {"last_sync_ts": None, "next_sync_after": None, "failures": 0}
    assert next_sync_ts(never_succeeded, now, 300) == now


async def test_sync_state_repo(database: Database) -> None:
    await TenantsRepo(database).add("acme")
    repo = SyncStateRepo(database, clock=lambda: 1_700_000_999)
    assert await repo.get("acme") is None
    assert await repo.get_all() == {}
    assert await repo.clear_dnd("acme") is False

    first = await repo.record_failure("acme", 1_700_000_000, 1_700_000_060, "timeout")
    assert first == {
        "tenant_id": "acme",
        "last_sync_ts": None,
        "next_sync_after": None,
        "failures": 1,
        "next_attempt_ts": 1_700_000_060,
        "last_error": "timeout",
        "updated_at": 1_700_000_000,
    }
    second = await repo.record_failure("acme", 1_700_000_060, 1_700_000_180, "x" * 5000)
    assert second["failures"] == 2
    assert second["last_error"] == "x" * MAX_ERROR_LENGTH

    ok = await repo.record_success("acme", 1_700_000_200, next_sync_after=1_700_009_999)
    assert ok == {
        "tenant_id": "acme",
        "last_sync_ts": 1_700_000_200,
        "next_sync_after": 1_700_009_999,
        "failures": 0,
        "next_attempt_ts": None,
        "last_error": None,
        "updated_at": 1_700_000_200,
    }
    assert await repo.clear_dnd("acme") is True
    cleared = await repo.get("acme")
    assert cleared is not None
    assert cleared["next_sync_after"] is None
    assert cleared["last_sync_ts"] == 1_700_000_200
    assert cleared["updated_at"] == 1_700_000_999
    assert list(await repo.get_all()) == ["acme"]

    await TenantsRepo(database).delete("acme")
    assert await repo.get("acme") is None  # the state goes with its tenant
