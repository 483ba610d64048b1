"""The README quickstart, in process: tenant + ``file`` account + message → an ``.eml`` on disk."""

from __future__ import annotations

import asyncio
import email
import json
import re
from pathlib import Path
from typing import Any

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
    for escape in ("../../etc", "/etc", "sub/../../x"):
        refused = await mp_client.post(
            "/accounts/add",
            id="evil",
            tenant_id="acme",
            transport="file",
            options={"directory": escape},
        )
        assert refused.status == 422, refused.json
        assert refused.json["errors"][0]["field"] == "options.directory"
        assert "outside the file transport's root" in refused.json["detail"]
    inside = await mp_client.post(
        "/accounts/add", id="ok", tenant_id="acme", transport="file", options={"directory": "a/b"}
    )
    assert inside.status == 200, inside.json
    assert (await mp_client.get("/accounts/list", tenant_id="acme")).json[0]["id"] == "ok"


def readme_bodies(route: str) -> list[dict[str, Any]]:
    """The JSON bodies the README posts to ``route`` (``curl ... $U<route> -d '<json>'``)."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    pattern = re.compile(re.escape(f"$U{route} -d '") + r"(\{.*?\})'", re.DOTALL)
    return [json.loads(body) for body in pattern.findall(readme)]


@pytest.mark.requires_plugins("smtp")
async def test_the_readme_smtp_example_delivers_through_a_plain_relay(mp_client, smtp_server):
    sink = await smtp_server()
    assert (await mp_client.post("/tenants/add", id="acme", name="Acme")).status == 200
    (relay,) = [body for body in readme_bodies("/accounts/add") if body["id"] == "relay"]
    assert relay["use_tls"] is False
    added = await mp_client.post("/accounts/add", json={**relay, "port": sink.port})
    assert added.status == 200, added.json
    (message,) = [body for body in readme_bodies("/messages/add") if body["id"] == "hello-2"]
    assert (await mp_client.post("/messages/add", json=message)).status == 200
    for _ in range(200):
        got = await mp_client.get("/messages/get", tenant_id="acme", message_id="hello-2")
        if got.json["status"] in ("sent", "error"):
            break
        await asyncio.sleep(0.05)
    assert got.json["status"] == "sent", got.json
    (received,) = sink.handler.messages
    assert received.rcpt_tos == ["bob@example.com"]
    (main,) = [body for body in readme_bodies("/accounts/add") if body["id"] == "main"]
    assert main["use_tls"] is True and main["port"] == 587
