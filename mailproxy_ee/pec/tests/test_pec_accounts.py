"""PEC accounts over the API: add_pec, list_pec, get_pec_ids, the pec fields, deletion."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from mailproxy_core import MailProxy, Settings
from mailproxy_core.kernel import build_kernel
from mailproxy_core.testing.client import ApiClient
from mailproxy_core.testing.fakes import TenantTokenPlugin
from mailproxy_ee_pec.tables import pec_accounts

SMTP = {"host": "smtps.pec.provider.example", "port": 465}


@pytest.fixture(autouse=True)
def _tenant_keys(register_plugin: Any) -> None:
    register_plugin(TenantTokenPlugin(), "tenant_tokens")


async def _tenant(client: ApiClient, tenant_id: str) -> None:
    response = await client.post("/tenants/add", id=tenant_id)
    assert response.status == 200, response.json


async def _add_pec(client: ApiClient, **fields: Any) -> Any:
    body = {
        "tenant_id": "acme",
        "id": "pec1",
        **SMTP,
        "imap_host": "imap.pec.example",
        "imap_user": "box",
        "imap_password": "imap-pass",
        **fields,
    }
    return await client.post("/accounts/add_pec", json=body)


def test_ee_pec_is_installed(tmp_path: Any) -> None:
    mp = build_kernel(Settings.from_values(db=str(tmp_path / "x.db")))
    info = {p.name: p for p in mp.plugins}["ee_pec"]
    assert info.status == "loaded"
    assert info.distribution == "mailproxy-ee-pec"
    assert "pec" in mp.registry.receipt_handlers
    assert "ee_pec" in mp.registry.settings.names()


async def test_add_pec_answers_the_account_object_with_its_pec_fields(
    mp_client: ApiClient, mp_kernel: MailProxy
) -> None:
    await _tenant(mp_client, "acme")
    response = await _add_pec(
        mp_client,
        user="amministrazione@pec.acme.example",
        password="smtp-secret-1",
        imap_user=None,
        imap_password=None,
    )
    assert response.status == 200, response.json
    body = response.json
    assert body["id"] == "pec1" and body["tenant_id"] == "acme" and body["host"] == SMTP["host"]
    assert body["pec"] is True
    assert (body["imap_host"], body["imap_port"], body["imap_ssl"], body["imap_folder"]) == (
        "imap.pec.example",
        993,
        True,
        "INBOX",
    )
    assert body["imap_user"] == "amministrazione@pec.acme.example"  # defaults to user
    assert body["has_imap_password"] is True and body["has_password"] is True
    assert body["last_poll_ts"] is None and body["last_error"] is None
    assert "imap_password" not in body and "password" not in body
    assert "smtp-secret-1" not in str(body)


async def test_the_imap_password_is_stored_encrypted_and_never_returned(
    mp_client: ApiClient, mp_kernel: MailProxy
) -> None:
    await _tenant(mp_client, "acme")
    response = await _add_pec(mp_client, imap_user="box", imap_password="imap-secret-2")
    assert response.status == 200, response.json
    assert response.json["imap_user"] == "box" and response.json["has_imap_password"] is True
    stored = await mp_kernel.data.fetch_val(sa.select(pec_accounts.c.imap_password))
    assert stored and stored.startswith("ENC:") and "imap-secret-2" not in stored
    for path, extra in (
        ("/accounts/get", {"account_id": "pec1"}),
        ("/accounts/list", {}),
        ("/accounts/list_pec", {}),
    ):
        listed = await mp_client.get(path, tenant_id="acme", **extra)
        assert listed.status == 200 and "imap-secret-2" not in str(listed.json)


async def test_invalid_fields_store_nothing(mp_client: ApiClient) -> None:
    await _tenant(mp_client, "acme")
    for fields, bad in (
        ({"imap_host": "  "}, "imap_host"),
        ({"imap_port": 0}, "imap_port"),
        ({"imap_port": 70000}, "imap_port"),
        ({"imap_folder": ""}, "imap_folder"),
        ({"port": 0}, "port"),  # a sending field: checked by the kernel, in the same call
        ({"imap_user": None}, "imap_user"),  # no user to default to
        ({"imap_password": ""}, "imap_password"),
    ):
        response = await _add_pec(mp_client, **fields)
        assert response.status == 422, (fields, response.json)
        assert bad in str(response.json)
    missing = await mp_client.post("/accounts/add_pec", json={"tenant_id": "acme", "id": "x"})
    assert missing.status == 422 and "imap_host" in str(missing.json)
    assert (await mp_client.get("/accounts/list", tenant_id="acme")).json == []
    assert (await mp_client.get("/accounts/get_pec_ids", tenant_id="acme")).json == []


async def test_add_pec_is_an_upsert_and_accounts_add_keeps_the_imap_settings(
    mp_client: ApiClient,
) -> None:
    await _tenant(mp_client, "acme")
    first = (await _add_pec(mp_client, imap_folder="Ricevute")).json
    second = (await _add_pec(mp_client, imap_port=143, imap_ssl=False, imap_folder="Ricevute")).json
    assert second["pk"] == first["pk"]
    assert (second["imap_port"], second["imap_ssl"]) == (143, False)
    plain = await mp_client.post(
        "/accounts/add",
        json={"tenant_id": "acme", "id": "pec1", "host": "smtp2.example", "port": 25},
    )
    assert plain.status == 200, plain.json
    assert plain.json["pec"] is True and plain.json["host"] == "smtp2.example"
    assert plain.json["imap_folder"] == "Ricevute" and plain.json["imap_port"] == 143
    got = (await mp_client.get("/accounts/get", tenant_id="acme", account_id="pec1")).json
    assert got["pec"] is True and got["imap_host"] == "imap.pec.example"


async def test_list_pec_and_get_pec_ids_are_ordered_and_scoped(mp_client: ApiClient) -> None:
    for tenant in ("beta", "acme"):
        await _tenant(mp_client, tenant)
    await _add_pec(mp_client, tenant_id="beta", id="b1")
    await _add_pec(mp_client, tenant_id="acme", id="z9")
    await _add_pec(mp_client, tenant_id="acme", id="a1")
    await mp_client.post("/accounts/add", json={"tenant_id": "acme", "id": "plain", **SMTP})

    everything = (await mp_client.get("/accounts/list_pec")).json
    assert [(a["tenant_id"], a["id"]) for a in everything] == [
        ("acme", "a1"),
        ("acme", "z9"),
        ("beta", "b1"),
    ]
    assert all(a["pec"] is True for a in everything)
    assert (await mp_client.get("/accounts/get_pec_ids", tenant_id="acme")).json == ["a1", "z9"]
    listed = (await mp_client.get("/accounts/list", tenant_id="acme")).json
    assert {a["id"]: a["pec"] for a in listed} == {"a1": True, "plain": False, "z9": True}
    assert "imap_host" not in next(a for a in listed if a["id"] == "plain")

    tenant = mp_client.as_tenant("beta")
    own = (await tenant.get("/accounts/list_pec")).json
    assert [a["id"] for a in own] == ["b1"]
    assert (await tenant.get("/accounts/get_pec_ids")).json == ["b1"]
    assert (await tenant.get("/accounts/list_pec", tenant_id="acme")).status == 403
    created = await tenant.post(
        "/accounts/add_pec",
        json={"id": "b2", **SMTP, "imap_host": "imap.beta.example", "user": "u", "password": "p"},
    )
    assert created.status == 200 and created.json["tenant_id"] == "beta"
    other = await tenant.post(
        "/accounts/add_pec",
        json={"tenant_id": "acme", "id": "x", **SMTP, "imap_host": "i.example", "user": "u"},
    )
    assert other.status == 403


async def test_deleting_the_account_or_the_tenant_removes_the_imap_settings(
    mp_client: ApiClient, mp_kernel: MailProxy
) -> None:
    await _tenant(mp_client, "acme")
    await _tenant(mp_client, "beta")
    await _add_pec(mp_client, id="one")
    await _add_pec(mp_client, id="two")
    await _add_pec(mp_client, tenant_id="beta", id="three")
    deleted = await mp_client.post(
        "/accounts/delete", json={"tenant_id": "acme", "account_id": "one"}
    )
    assert deleted.status == 200
    rows = await mp_kernel.data.fetch_all(sa.select(pec_accounts.c.account_id))
    assert sorted(r["account_id"] for r in rows) == ["three", "two"]
    assert (await mp_client.post("/tenants/delete", json={"tenant_id": "beta"})).status == 200
    rows = await mp_kernel.data.fetch_all(sa.select(pec_accounts.c.account_id))
    assert [r["account_id"] for r in rows] == ["two"]
    assert (await mp_client.get("/accounts/get_pec_ids", tenant_id="acme")).json == ["two"]


async def test_unknown_tenant_is_404(mp_client: ApiClient) -> None:
    response = await _add_pec(mp_client, tenant_id="nobody")
    assert response.status == 404, response.json
