"""Tenant API keys end to end over real HTTP (hypercorn on loopback), SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from mailproxy_core.kernel import build_kernel
from mailproxy_core.settings import Settings
from mailproxy_core.testing.plugin import ADMIN_TOKEN
from mailproxy_ee_apikeys.keys import KEY_PREFIX, looks_like_key
from mailproxy_ee_apikeys.store import LAST_USED_RESOLUTION, api_keys

from .conftest import Live


def test_ee_apikeys_is_installed(tmp_path: Path) -> None:
    mp = build_kernel(Settings.from_values(db=str(tmp_path / "x.db")))
    info = {p.name: p for p in mp.plugins}["ee_apikeys"]
    assert info.status == "loaded", info.load_error
    assert info.distribution == "mailproxy-ee-apikeys"
    assert "ee_api_keys" in mp.registry.auth_backends
    entities = {
        (entry.spec.entity, entry.spec.endpoint.__name__) for entry in mp.registry.endpoints
    }
    assert ("tenants", "TenantApiKeys") in entities and ("api_keys", "ApiKeys") in entities


async def new_tenant(live: Live, tenant_id: str) -> str:
    """Create a tenant with an account (null transport); return its first default key."""
    created = await live.post("/tenants/add", id=tenant_id, name=tenant_id.title())
    key = created["api_key"]
    await live.post("/accounts/add", id=f"{tenant_id}-acct", tenant_id=tenant_id, transport="null")
    return str(key)


def message(tenant_id: str, message_id: str) -> dict[str, Any]:
    return {
        "id": message_id,
        "tenant_id": tenant_id,
        "account_id": f"{tenant_id}-acct",
        "from": f"sender@{tenant_id}.example.com",
        "to": "rcpt@example.com",
        "subject": "hello",
        "body": "hello there",
    }


async def stored_rows(live: Live) -> list[dict[str, Any]]:
    return [dict(row) for row in await live.mp.data.fetch_all(sa.select(api_keys))]


async def test_tenant_add_shows_the_first_key_once(live: Live) -> None:
    created = await live.post("/tenants/add", id="acme", name="Acme")
    key = created["api_key"]
    assert looks_like_key(key)
    assert created["id"] == "acme" and created["has_api_key"] is True
    assert created["api_key_expires_at"] is None
    assert "api_key_hash" not in created

    shown = await live.get("/tenants/get", tenant_id="acme")
    assert shown["has_api_key"] is True and shown["api_key_expires_at"] is None
    assert "api_key" not in shown and "api_key_hash" not in shown
    listed = await live.get("/tenants/list")
    assert [(t["id"], t["has_api_key"]) for t in listed] == [("acme", True)]

    # An update of an existing id neither shows nor changes the key.
    updated = await live.post("/tenants/add", id="acme", name="Acme Corp")
    assert "api_key" not in updated and updated["has_api_key"] is True
    own = await live.get("/tenants/get", token=key)  # tenant_id defaults to its own
    assert own["id"] == "acme" and own["name"] == "Acme Corp"
    assert key not in json.dumps(own)

    rows = await stored_rows(live)
    assert [(r["tenant_id"], r["name"], r["scopes"]) for r in rows] == [
        ("acme", "default", "manage")
    ]
    assert rows[0]["key_hash"].startswith("sha256$") and key not in json.dumps(rows)


async def test_the_default_key_is_replaced_expires_and_is_revoked_at_once(live: Live) -> None:
    first = await new_tenant(live, "acme")
    assert (await live.call("GET", "/accounts/list", first)).status_code == 200

    replaced = await live.post("/tenants/create_api_key", tenant_id="acme")
    second = replaced["api_key"]
    assert replaced == {"ok": True, "tenant_id": "acme", "api_key": second, "expires_at": None}
    assert second != first and looks_like_key(second)
    old = await live.call("GET", "/accounts/list", first)
    assert old.status_code == 401 and old.json()["code"] == "unauthorized"
    assert (await live.call("GET", "/accounts/list", second)).status_code == 200

    later = int(time.time()) + 3600
    future = await live.post("/tenants/create_api_key", tenant_id="acme", expires_at=later)
    assert future["expires_at"] == later
    assert (await live.call("GET", "/accounts/list", future["api_key"])).status_code == 200
    shown = await live.get("/tenants/get", tenant_id="acme")
    assert shown["has_api_key"] is True and shown["api_key_expires_at"] == later

    past = await live.post("/tenants/create_api_key", tenant_id="acme", expires_at=1_000_000)
    expired = await live.call("GET", "/accounts/list", past["api_key"])
    assert expired.status_code == 401
    assert "expired" in expired.json()["detail"] and past["api_key"] not in expired.text

    assert await live.post("/tenants/revoke_api_key", tenant_id="acme") == {"ok": True}
    shown = await live.get("/tenants/get", tenant_id="acme")
    assert shown["has_api_key"] is False and shown["api_key_expires_at"] is None
    # Revoking again, with no key left, is fine.
    assert await live.post("/tenants/revoke_api_key", tenant_id="acme") == {"ok": True}

    for path in ("/tenants/create_api_key", "/tenants/revoke_api_key"):
        missing = await live.call("POST", path, tenant_id="nobody")
        assert missing.status_code == 404
        assert missing.json()["detail"] == "tenant 'nobody' not found"


async def test_default_key_routes_are_admin_only(live: Live) -> None:
    key = await new_tenant(live, "acme")
    for path in ("/tenants/create_api_key", "/tenants/revoke_api_key"):
        refused = await live.call("POST", path, key, tenant_id="acme")
        assert refused.status_code == 403, refused.text
        assert refused.json()["code"] == "forbidden"
    assert (await live.call("GET", "/accounts/list", key)).status_code == 200


async def test_a_tenant_key_acts_only_on_its_own_tenant(live: Live) -> None:
    acme = await new_tenant(live, "acme")
    globex = await new_tenant(live, "globex")
    await live.post("/messages/add", **message("globex", "g-1"))

    added = await live.post("/messages/add", acme, **message("acme", "a-1"))
    assert added["id"] == "a-1"
    listed = await live.get("/messages/list", acme)
    assert [m["id"] for m in listed] == ["a-1"]
    other = await live.call("GET", "/messages/list", acme, tenant_id="globex")
    assert other.status_code == 403 and "globex" in other.json()["detail"]
    foreign = await live.call("GET", "/messages/get", acme, message_id="g-1")
    assert foreign.status_code == 404
    assert (
        await live.call("POST", "/messages/add", acme, **message("globex", "x"))
    ).status_code == 403
    assert (await live.call("GET", "/tenants/list", acme)).status_code == 403
    assert (await live.call("GET", "/command_log/list", acme)).status_code == 403
    # The other tenant's key sees its own message only.
    assert [m["id"] for m in await live.get("/messages/list", globex)] == ["g-1"]
    # A tenant's keys go with it.
    assert await live.post("/tenants/delete", tenant_id="globex") == {"ok": True}
    assert (await live.call("GET", "/messages/list", globex)).status_code == 401
    assert {r["tenant_id"] for r in await stored_rows(live)} == {"acme"}


async def test_scoped_keys_are_listed_without_secrets_and_limited_to_their_scopes(
    live: Live,
) -> None:
    default = await new_tenant(live, "acme")
    keys: dict[str, str] = {}
    for name, scopes in (("sender", ["send"]), ("reader", ["read"]), ("admin-tool", ["manage"])):
        made = await live.post(
            "/api_keys/add", tenant_id="acme", name=name, scopes=scopes, expires_at=None
        )
        assert made == {
            "ok": True,
            "tenant_id": "acme",
            "name": name,
            "scopes": scopes,
            "api_key": made["api_key"],
            "expires_at": None,
        }
        assert made["api_key"].startswith(KEY_PREFIX)
        keys[name] = made["api_key"]
    sender, reader, manager = keys["sender"], keys["reader"], keys["admin-tool"]

    # send: send and read messages, nothing else.
    assert (await live.post("/messages/add", sender, **message("acme", "s-1")))["id"] == "s-1"
    batch = await live.post("/messages/add_batch", sender, messages=[message("acme", "s-2")])
    assert batch["queued"] == 1
    assert {m["id"] for m in await live.get("/messages/list", sender)} == {"s-1", "s-2"}
    assert (await live.get("/messages/get", sender, message_id="s-1"))["id"] == "s-1"
    assert await live.get("/messages/count_active", sender) == 2
    for method, path, params, scope in (
        ("GET", "/accounts/list", {}, "read"),
        ("GET", "/tenants/get", {}, "read"),
        ("POST", "/accounts/add", {"id": "x", "transport": "null"}, "manage"),
        ("POST", "/messages/cleanup", {}, "manage"),
        ("POST", "/api_keys/add", {"name": "more", "scopes": ["manage"]}, "manage"),
    ):
        refused = await live.call(method, path, sender, **params)
        assert refused.status_code == 403, (path, refused.text)
        assert f"lacks the scope '{scope}'" in refused.json()["detail"], refused.text
        assert "'sender'" in refused.json()["detail"]

    # read: every read, no write.
    assert [a["id"] for a in await live.get("/accounts/list", reader)] == ["acme-acct"]
    assert {m["id"] for m in await live.get("/messages/list", reader)} == {"s-1", "s-2"}
    assert (await live.get("/tenants/get", reader))["id"] == "acme"
    for method, path, params, scope in (
        ("POST", "/messages/add", message("acme", "r-1"), "send"),
        ("POST", "/tenants/update", {"name": "Renamed"}, "manage"),
        ("POST", "/api_keys/revoke", {"name": "sender"}, "manage"),
    ):
        refused = await live.call(method, path, reader, **params)
        assert refused.status_code == 403, (path, refused.text)
        assert f"lacks the scope '{scope}'" in refused.json()["detail"]

    # manage: everything the default key may do, still only its own tenant and no admin route.
    assert (await live.post("/accounts/add", manager, id="m-acct", transport="null"))[
        "id"
    ] == "m-acct"
    assert (await live.post("/messages/add", manager, **message("acme", "m-1")))["id"] == "m-1"
    refused = await live.call("GET", "/tenants/list", manager)
    assert refused.status_code == 403 and "admin" in refused.json()["detail"]
    assert (
        await live.call("POST", "/tenants/create_api_key", manager, tenant_id="acme")
    ).status_code == 403
    assert (
        await live.call("GET", "/accounts/list", manager, tenant_id="globex")
    ).status_code == 403

    listed = await live.get("/api_keys/list", default)
    assert [(k["name"], k["scopes"]) for k in listed] == [
        ("default", ["manage"]),
        ("admin-tool", ["manage"]),
        ("reader", ["read"]),
        ("sender", ["send"]),
    ]
    for entry in listed:
        assert set(entry) == {"name", "scopes", "created_ts", "expires_at", "last_used_ts"}
        assert isinstance(entry["created_ts"], int) and entry["last_used_ts"] is not None
    text = json.dumps(listed)
    assert not any(key in text for key in (*keys.values(), default)) and "sha256" not in text
    assert await live.get("/api_keys/list", reader) == await live.get(
        "/api_keys/list", tenant_id="acme"
    )

    # Revoked: refused at once; unknown names → 404.
    assert await live.post("/api_keys/revoke", manager, name="sender") == {"ok": True}
    gone = await live.call("GET", "/messages/list", sender)
    assert gone.status_code == 401
    missing = await live.call("POST", "/api_keys/revoke", tenant_id="acme", name="sender")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "API key 'sender' not found for tenant 'acme'"


async def test_api_keys_add_checks_its_input(live: Live) -> None:
    await new_tenant(live, "acme")
    await live.post("/api_keys/add", tenant_id="acme", name="ci", scopes=["send", "read"])
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"name": "ci", "scopes": ["read"]}, 409, "already has an API key named 'ci'"),
        ({"name": "default", "scopes": ["read"]}, 422, "name: 'default' is the default key"),
        ({"name": "", "scopes": ["read"]}, 422, "name:"),
        ({"name": "has space", "scopes": ["read"]}, 422, "name:"),
        ({"name": "x" * 65, "scopes": ["read"]}, 422, "name:"),
        ({"name": "ok", "scopes": []}, 422, "scopes: give at least one"),
        ({"name": "ok", "scopes": ["admin"]}, 422, "scopes"),
        ({"name": "ok"}, 422, "scopes"),
        ({"name": "ok", "scopes": ["read"], "expires_at": "soon"}, 422, "expires_at"),
    ]
    for body, status, detail in cases:
        response = await live.call("POST", "/api_keys/add", tenant_id="acme", **body)
        assert response.status_code == status, (body, response.text)
        assert detail in response.json()["detail"], (body, response.text)
    unknown = await live.call(
        "POST", "/api_keys/add", tenant_id="nobody", name="a", scopes=["read"]
    )
    assert unknown.status_code == 404
    assert (await live.call("GET", "/api_keys/list", tenant_id="nobody")).status_code == 404
    # The admin must name the tenant.
    assert (await live.call("GET", "/api_keys/list")).status_code == 422


async def test_scoped_key_expiry(live: Live) -> None:
    await new_tenant(live, "acme")
    soon = int(time.time()) + 2
    made = await live.post(
        "/api_keys/add", tenant_id="acme", name="short", scopes=["read"], expires_at=soon
    )
    assert (await live.call("GET", "/accounts/list", made["api_key"])).status_code == 200
    await asyncio.sleep(max(0.0, soon - time.time()))
    expired = await live.call("GET", "/accounts/list", made["api_key"])
    assert expired.status_code == 401 and "expired" in expired.json()["detail"]
    listed = await live.get("/api_keys/list", tenant_id="acme")
    assert {k["name"]: k["expires_at"] for k in listed} == {"default": None, "short": soon}


async def test_last_used_is_recorded_without_a_write_per_request(live: Live) -> None:
    key = await new_tenant(live, "acme")
    assert (await live.get("/api_keys/list", tenant_id="acme"))[0]["last_used_ts"] is None
    before = int(time.time())
    await live.get("/accounts/list", key)
    first = (await live.get("/api_keys/list", tenant_id="acme"))[0]["last_used_ts"]
    assert before <= first <= int(time.time())
    # Pretend the stored use is older than the resolution: the next request records it again;
    # within the resolution nothing is written.
    old = first - LAST_USED_RESOLUTION
    await live.mp.data.execute(sa.update(api_keys).values(last_used_ts=old))
    await live.get("/accounts/list", key)
    again = (await live.get("/api_keys/list", tenant_id="acme"))[0]["last_used_ts"]
    assert again >= first
    await live.mp.data.execute(sa.update(api_keys).values(last_used_ts=again - 1))
    await live.get("/accounts/list", key)
    assert (await live.get("/api_keys/list", tenant_id="acme"))[0]["last_used_ts"] == again - 1


async def test_keys_never_reach_the_log_the_command_log_or_metrics(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    created = await live.post("/tenants/add", id="acme")
    first = created["api_key"]
    await live.post("/accounts/add", id="acme-acct", tenant_id="acme", transport="null")
    second = (await live.post("/tenants/create_api_key", tenant_id="acme"))["api_key"]
    scoped = (await live.post("/api_keys/add", tenant_id="acme", name="ci", scopes=["send"]))[
        "api_key"
    ]
    await live.post("/messages/add", scoped, **message("acme", "c-1"))
    refused = await live.call("POST", "/accounts/add", scoped, id="x", transport="null")
    assert refused.status_code == 403
    await live.post("/api_keys/revoke", second, name="ci")

    entries = await live.get("/command_log/list", limit=100)
    by_endpoint = {(e["endpoint"], e["principal"]) for e in entries}
    assert ("POST /tenants/add", "admin") in by_endpoint
    assert ("POST /messages/add", "tenant:acme/ci") in by_endpoint
    assert ("POST /api_keys/revoke", "tenant:acme/default") in by_endpoint
    metrics = await live.http.get("/metrics")
    everything = json.dumps(entries) + caplog.text + metrics.text
    for key in (first, second, scoped):
        assert key not in everything
        assert key[len(KEY_PREFIX) :] not in everything
    add_entry = next(e for e in entries if e["endpoint"] == "POST /tenants/add")
    assert add_entry["response_body"]["api_key"] == "***"


async def test_the_database_holds_only_hashes(live: Live, mp_settings: Settings) -> None:
    created = await live.post("/tenants/add", id="acme")
    scoped = await live.post("/api_keys/add", tenant_id="acme", name="ci", scopes=["read"])
    rows = await stored_rows(live)
    assert len(rows) == 2
    dumped = json.dumps(rows)
    for key in (created["api_key"], scoped["api_key"]):
        assert key not in dumped and key[len(KEY_PREFIX) :] not in dumped
    if mp_settings.db.startswith(("postgres", "postgresql")):
        return
    raw = b"".join(p.read_bytes() for p in Path(mp_settings.db).parent.glob("*.db*"))
    for key in (created["api_key"], scoped["api_key"]):
        assert key[len(KEY_PREFIX) :].encode() not in raw


async def test_admin_token_and_unknown_keys(live: Live) -> None:
    await new_tenant(live, "acme")
    assert (await live.call("GET", "/tenants/list", ADMIN_TOKEN)).status_code == 200
    fake = KEY_PREFIX + "A" * 43
    for token in (fake, "mpk_short", None):
        response = await live.call("GET", "/accounts/list", token, tenant_id="acme")
        assert response.status_code == 401, token
    bearer = await live.http.get(
        "/tenants/get", headers={"Authorization": f"Bearer {await new_tenant(live, 'globex')}"}
    )
    assert bearer.status_code == 200 and bearer.json()["id"] == "globex"


async def test_the_instance_reports_the_enterprise_edition(live: Live) -> None:
    key = await new_tenant(live, "acme")
    assert (await live.get("/instance/get"))["edition"] == "ee"
    assert (await live.get("/instance/get", key))["edition"] == "ee"  # a read: any scope
    upgraded = await live.post("/instance/upgrade_to_ee")
    assert upgraded["edition"] == "ee" and "ee_apikeys" in upgraded["plugins"]
