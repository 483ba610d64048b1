"""The plugin is installed; its configuration and suppression routes over the real API."""

from __future__ import annotations

import importlib.metadata
from typing import Any

import pytest

from mailproxy_core.testing.client import ApiClient


def test_ee_bounce_is_installed() -> None:
    [entry] = [
        ep for ep in importlib.metadata.entry_points(group="mailproxy") if ep.name == "ee_bounce"
    ]
    assert entry.value == "mailproxy_ee_bounce"
    assert entry.dist is not None and entry.dist.name == "mailproxy-ee-bounce"


async def test_plugin_is_loaded_in_the_app(mp_client: ApiClient) -> None:
    response = await mp_client.get("/instance/plugins")
    assert response.status == 200
    [plugin] = [p for p in response.json["plugins"] if p["name"] == "ee_bounce"]
    assert plugin["status"] == "loaded"


async def test_default_bounce_config(mp_client: ApiClient) -> None:
    response = await mp_client.get("/instance/get_bounce_config")
    assert response.status == 200
    assert response.json == {
        "enabled": False,
        "imap_host": None,
        "imap_port": 993,
        "imap_ssl": True,
        "imap_user": None,
        "imap_folder": "INBOX",
        "poll_interval": 60,
        "return_path": None,
        "has_imap_password": False,
        "last_poll_ts": None,
        "last_error": None,
    }


async def test_set_bounce_config_keeps_left_out_fields_and_never_shows_the_password(
    mp_client: ApiClient,
) -> None:
    secret = "imap-Secret-4711"
    first = await mp_client.post(
        "/instance/set_bounce_config",
        json={
            "imap_host": "imap.example.test",
            "imap_user": "bounces@example.test",
            "imap_password": secret,
            "return_path": "Bounces <bounces@example.test>",
            "poll_interval": 30,
        },
    )
    assert first.status == 200, first.json
    assert first.json["has_imap_password"] is True
    assert first.json["return_path"] == "bounces@example.test"
    assert first.json["poll_interval"] == 30
    assert first.json["enabled"] is False
    second = await mp_client.post(
        "/instance/set_bounce_config", json={"enabled": True, "imap_port": 143, "imap_ssl": False}
    )
    assert second.status == 200
    body = second.json
    assert (body["enabled"], body["imap_host"], body["imap_port"], body["imap_ssl"]) == (
        True, "imap.example.test", 143, False,
    )  # fmt: skip
    assert body["imap_user"] == "bounces@example.test" and body["has_imap_password"] is True
    for response in (first, second, await mp_client.get("/instance/get_bounce_config")):
        assert secret not in str(response.json)
        assert "imap_password" not in response.json
    log = await mp_client.get("/command_log/list", limit=50)
    assert log.status == 200
    assert secret not in str(log.json)
    cleared = await mp_client.post("/instance/set_bounce_config", json={"imap_password": ""})
    assert cleared.json["has_imap_password"] is False
    unset = await mp_client.post("/instance/set_bounce_config", json={"return_path": ""})
    assert unset.json["return_path"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"enabled": True}, "imap_host"),
        ({"poll_interval": 0}, "poll_interval"),
        ({"imap_port": 70000}, "imap_port"),
        ({"imap_port": 0}, "imap_port"),
        ({"return_path": "not an address"}, "return_path"),
        ({"return_path": "a@b, c@d.example"}, "return_path"),
        ({"imap_folder": "  "}, "imap_folder"),
        ({"imap_host": "bad host"}, "imap_host"),
    ],
)
async def test_invalid_bounce_config_is_422_naming_the_field(
    mp_client: ApiClient, body: dict[str, Any], field: str
) -> None:
    response = await mp_client.post("/instance/set_bounce_config", json=body)
    assert response.status == 422, response.json
    assert field in str(response.json)
    assert (await mp_client.get("/instance/get_bounce_config")).json["enabled"] is False


async def test_reload_bounce_answers_ok(mp_client: ApiClient) -> None:
    response = await mp_client.post("/instance/reload_bounce", json={})
    assert (response.status, response.json) == (200, {"ok": True})


async def test_suppressions_add_list_delete(mp_client: ApiClient) -> None:
    assert (await mp_client.post("/tenants/add", json={"id": "acme"})).status == 200
    added = await mp_client.post(
        "/suppressions/add", json={"tenant_id": "acme", "address": "Jane <Jane.Doe@Example.test>"}
    )
    assert added.status == 200, added.json
    assert added.json["address"] == "jane.doe@example.test"
    assert added.json["reason"] == "manual"
    assert added.json["bounce_code"] is None
    assert isinstance(added.json["created_ts"], int)
    again = await mp_client.post(
        "/suppressions/add",
        json={"tenant_id": "acme", "address": "jane.doe@example.test", "reason": "other"},
    )
    assert again.json == added.json  # already listed: the entry is kept
    await mp_client.post(
        "/suppressions/add",
        json={"tenant_id": "acme", "address": "sam@example.test", "reason": "asked by the user"},
    )
    listed = await mp_client.get("/suppressions/list", tenant_id="acme")
    assert listed.status == 200
    assert {e["address"] for e in listed.json} == {"jane.doe@example.test", "sam@example.test"}
    one = await mp_client.get("/suppressions/list", tenant_id="acme", address="SAM@example.test")
    assert [e["reason"] for e in one.json] == ["asked by the user"]
    page = await mp_client.get("/suppressions/list", tenant_id="acme", limit=1, offset=1)
    assert len(page.json) == 1
    removed = await mp_client.post(
        "/suppressions/delete", json={"tenant_id": "acme", "address": "Jane.Doe@example.test"}
    )
    assert removed.json == {"ok": True, "removed": 1}
    gone = await mp_client.post(
        "/suppressions/delete", json={"tenant_id": "acme", "address": "jane.doe@example.test"}
    )
    assert gone.json == {"ok": True, "removed": 0}


async def test_suppressions_are_per_tenant_and_deleted_with_it(mp_client: ApiClient) -> None:
    for tenant in ("acme", "globex"):
        assert (await mp_client.post("/tenants/add", json={"id": tenant})).status == 200
    await mp_client.post(
        "/suppressions/add", json={"tenant_id": "acme", "address": "x@example.test"}
    )
    assert (await mp_client.get("/suppressions/list", tenant_id="globex")).json == []
    assert (await mp_client.post("/tenants/delete", json={"tenant_id": "acme"})).status == 200
    assert (await mp_client.post("/tenants/add", json={"id": "acme"})).status == 200
    assert (await mp_client.get("/suppressions/list", tenant_id="acme")).json == []


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/suppressions/add", {"tenant_id": "nobody", "address": "x@example.test"}, 404),
        ("/suppressions/delete", {"tenant_id": "nobody", "address": "x@example.test"}, 404),
        ("/suppressions/add", {"tenant_id": "acme", "address": "not-an-address"}, 422),
        ("/suppressions/add", {"tenant_id": "acme", "address": "a@localhost"}, 422),
        ("/suppressions/add", {"tenant_id": "acme"}, 422),
        ("/suppressions/add", {"tenant_id": "acme", "address": "a@b.example", "reason": " "}, 422),
    ],
)
async def test_suppression_mistakes_are_client_errors(
    mp_client: ApiClient, path: str, body: dict[str, Any], status: int
) -> None:
    await mp_client.post("/tenants/add", json={"id": "acme"})
    response = await mp_client.post(path, json=body)
    assert response.status == status, response.json


async def test_suppressions_list_checks_its_paging_and_tenant(mp_client: ApiClient) -> None:
    await mp_client.post("/tenants/add", json={"id": "acme"})
    assert (await mp_client.get("/suppressions/list", tenant_id="nobody")).status == 404
    assert (await mp_client.get("/suppressions/list", tenant_id="acme", limit=0)).status == 422
    assert (await mp_client.get("/suppressions/list", tenant_id="acme", offset=-1)).status == 422
    assert (await mp_client.get("/suppressions/list")).status == 422  # the admin names a tenant


async def test_tenant_keys_manage_their_own_list_only_and_not_the_mailbox(
    mp_client: ApiClient,
) -> None:
    for tenant in ("acme", "globex"):
        assert (await mp_client.post("/tenants/add", json={"id": tenant})).status == 200
    acme = mp_client.as_tenant("acme")
    added = await acme.post("/suppressions/add", json={"address": "x@example.test"})
    assert added.status == 200, added.json
    assert [e["address"] for e in (await acme.get("/suppressions/list")).json] == ["x@example.test"]
    other = await acme.post(
        "/suppressions/add", json={"tenant_id": "globex", "address": "y@example.test"}
    )
    assert other.status == 403
    assert (await acme.get("/suppressions/list", tenant_id="globex")).status == 403
    assert (await acme.get("/instance/get_bounce_config")).status == 403
    assert (await acme.post("/instance/set_bounce_config", json={})).status == 403
    assert (await acme.post("/instance/reload_bounce", json={})).status == 403
