"""The Message-ID stored at enqueue is the one every attempt sends, through a real SMTP server."""

from __future__ import annotations

import email
from pathlib import Path

import pytest

from mailproxy_core import Settings
from mailproxy_core.testing.client import ApiClient
from mailproxy_core.testing.dispatch import dispatch_now
from mailproxy_core.testing.plugin import ADMIN_TOKEN
from mailproxy_core.testing.smtp import ScriptedServer

from .support import enqueue, get_message, message

pytestmark = pytest.mark.requires_plugins("smtp")


@pytest.fixture
def mp_settings(tmp_path: Path, db_url: str) -> Settings:
    return Settings.from_values(
        db=db_url,
        api_token=ADMIN_TOKEN,
        test_mode=True,
        max_retries=2,
        retry_delays=(0.001,),
        plugin_sections={"smtp": {"local_hostname": "client.test", "connect_timeout": 2.0}},
    )


async def _smtp_tenant(client: ApiClient, tenant_id: str, port: int) -> None:
    assert (await client.post("/tenants/add", id=tenant_id)).status == 200
    account = await client.post(
        "/accounts/add", id="main", tenant_id=tenant_id, host="127.0.0.1", port=port, use_tls=False
    )
    assert account.status == 200, account.json


def _headers(server: ScriptedServer) -> list[email.message.Message]:
    return [email.message_from_bytes(m.content) for m in server.handler.messages]


async def test_every_attempt_sends_the_stored_message_id(mp_kernel, mp_client, smtp_server):
    server: ScriptedServer = await smtp_server()
    await _smtp_tenant(mp_client, "acme", server.port)
    await _smtp_tenant(mp_client, "globex", server.port)
    server.handler.script("DATA", "451 4.3.0 try again later")  # the first attempt fails
    await enqueue(
        mp_client,
        message("acme", "m1"),
        message("globex", "m1"),
        message("acme", "own", message_id="order-7@shop.example"),
    )
    stored = {
        (m.tenant_id, m.id): m.message_id_header
        for mid in ("m1", "own")
        for m in await mp_kernel.find_messages(client_message_id=mid)
    }
    await dispatch_now(mp_kernel)

    # Three accepted messages; the refused first attempt was retried with the same Message-ID.
    sent = {(h["X-Genro-Mail-ID"], h["Message-ID"]) for h in _headers(server)}
    assert len(server.handler.data_seen) == 4
    refused = email.message_from_bytes(server.handler.data_seen[0])
    assert (refused["X-Genro-Mail-ID"], refused["Message-ID"]) in sent
    assert sent == {
        ("m1", stored[("acme", "m1")]),
        ("m1", stored[("globex", "m1")]),
        ("own", "<order-7@shop.example>"),
    }
    assert stored[("acme", "m1")] != stored[("globex", "m1")]
    assert stored[("acme", "m1")].endswith("@acme.example>")
    for tenant_id, mid in stored:
        history = (await get_message(mp_client, tenant_id, mid))["history"]
        assert history[-1]["event_type"] == "sent"


async def test_resubmitting_a_pending_message_keeps_its_generated_id(mp_kernel, mp_client):
    assert (await mp_client.post("/tenants/add", id="acme")).status == 200
    account = {"id": "main", "tenant_id": "acme", "host": "x.invalid", "port": 25}
    assert (await mp_client.post("/accounts/add", **account, transport="null")).status == 200
    await enqueue(mp_client, message("acme", "m1"))
    (first,) = await mp_kernel.find_messages(client_message_id="m1")
    await enqueue(mp_client, message("acme", "m1", subject="changed"))
    (second,) = await mp_kernel.find_messages(client_message_id="m1")
    assert second.message_id_header == first.message_id_header
    # A client-given id replaces it, and wins over a later generated one.
    await enqueue(mp_client, message("acme", "m1", message_id="<mine@shop.example>"))
    (third,) = await mp_kernel.find_messages(client_message_id="m1")
    assert third.message_id_header == "<mine@shop.example>"
    await enqueue(mp_client, message("acme", "m1"))
    (fourth,) = await mp_kernel.find_messages(client_message_id="m1")
    assert fourth.message_id_header.startswith("<mp.")
