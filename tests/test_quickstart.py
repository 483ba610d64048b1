"""The README quickstart, in process: tenant + ``file`` account + message → an ``.eml`` on disk."""

from __future__ import annotations

import asyncio
import email
from pathlib import Path

import pytest

from mailproxy_core import Settings
from mailproxy_core.testing.plugin import ADMIN_TOKEN

pytestmark = pytest.mark.requires_plugins("auth_token")


@pytest.fixture
def mp_settings(tmp_path: Path) -> Settings:
    # Not test mode: the dispatcher runs on its own, as under `make serve`.
    return Settings.from_values(
        db=str(tmp_path / "mailproxy.db"),
        api_token=ADMIN_TOKEN,
        send_loop_interval=0.05,
        plugin_sections={"file": {"root": str(tmp_path / "mail-out")}},
    )


async def test_quickstart_writes_an_eml_file(mp_client, tmp_path):
    assert (await mp_client.post("/tenants/add", id="acme", name="Acme")).status == 200
    account = await mp_client.post("/accounts/add", id="dev", tenant_id="acme", transport="file")
    assert account.status == 200, account.json
    queued = await mp_client.post(
        "/messages/add",
        json={
            "id": "hello-1",
            "tenant_id": "acme",
            "account_id": "dev",
            "from": "shop@acme.example",
            "to": "bob@example.com",
            "subject": "Hello",
            "body": "It works.",
        },
    )
    assert queued.status == 200, queued.json
    for _ in range(200):
        got = await mp_client.get("/messages/get", tenant_id="acme", message_id="hello-1")
        if got.json["status"] == "sent":
            break
        await asyncio.sleep(0.05)
    assert got.json["status"] == "sent"
    (eml,) = (tmp_path / "mail-out").glob("*.eml")
    parsed = email.message_from_bytes(eml.read_bytes())
    assert parsed["Subject"] == "Hello" and parsed["X-Genro-Mail-ID"] == "hello-1"
    assert parsed.get_payload().strip() == "It works."


async def test_file_account_cannot_write_outside_its_root(mp_client, tmp_path):
    await mp_client.post("/tenants/add", id="acme")
    await mp_client.post(
        "/accounts/add",
        id="evil",
        tenant_id="acme",
        transport="file",
        options={"directory": "../../etc"},
    )
    await mp_client.post(
        "/messages/add",
        json={
            "id": "m",
            "tenant_id": "acme",
            "account_id": "evil",
            "from": "a@acme.example",
            "to": "b@example.com",
            "subject": "s",
            "body": "b",
        },
    )
    for _ in range(200):
        got = await mp_client.get(
            "/messages/get", tenant_id="acme", message_id="m", include_history=True
        )
        if got.json["status"] == "error":
            break
        await asyncio.sleep(0.05)
    assert got.json["status"] == "error"
    assert "outside the configured root" in got.json["history"][0]["description"]
