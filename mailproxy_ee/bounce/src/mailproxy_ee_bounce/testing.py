"""Helpers for tests of the bounce plugin (and of plugins that build on it).

They drive a test instance through its API (any client with ``get(path, **query)`` and
``post(path, json=...)`` answering objects with ``status`` and ``json``, such as the kernel's test
``ApiClient``): set up
a tenant with an SMTP account pointing at an ``smtp_server`` sink, configure the bounce mailbox
on a ``mailproxy_ee_imap.testing`` Dovecot folder, send a message and read it back as the sink
received it, fill the placeholders of sample notices, poll the mailbox once, and read a
message's ``bounce`` events.
"""

from __future__ import annotations

import asyncio
import email
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .handler import BounceMailboxHandler

if TYPE_CHECKING:
    from mailproxy_core import MailProxy
    from mailproxy_ee_imap.testing import TestMailbox

ApiClient = Any
"""An API client of a test instance (see the module docstring)."""

RETURN_PATH = "bounces@mail.acme-shop.example"
"""The return path the helpers configure."""


@dataclass
class Sent:
    """A message the service sent, as the SMTP sink received it."""

    tenant_id: str
    id: str
    message_id: str
    mail_from: str
    rcpt_tos: list[str]


def fill_placeholders(raw: bytes, sent: Sent, *, rcpt: str, rcpt2: str = "") -> bytes:
    """A sample notice about ``sent``: ``{{RCPT}}``, ``{{RCPT2}}``, ``{{MESSAGE_ID}}`` (the
    Message-ID the sink received) and ``{{MAIL_ID}}`` (the client id) filled in."""
    return (
        raw.replace(b"{{RCPT}}", rcpt.encode())
        .replace(b"{{RCPT2}}", rcpt2.encode())
        .replace(b"{{MESSAGE_ID}}", sent.message_id.encode())
        .replace(b"{{MAIL_ID}}", sent.id.encode())
    )


async def setup_tenant(
    client: ApiClient, smtp: Any, tenant_id: str = "acme", client_url: str | None = None
) -> None:
    """A tenant with an SMTP account ``smtp`` that sends to the sink ``smtp``."""
    tenant: dict[str, Any] = {"id": tenant_id}
    if client_url:
        tenant["client_base_url"] = client_url
    response = await client.post("/tenants/add", json=tenant)
    assert response.status == 200, response.json
    account = {
        "tenant_id": tenant_id,
        "id": "smtp",
        "host": "127.0.0.1",
        "port": smtp.port,
        "use_tls": False,
    }
    response = await client.post("/accounts/add", json=account)
    assert response.status == 200, response.json


async def configure(client: ApiClient, box: TestMailbox, **extra: Any) -> None:
    """Enable the bounce mailbox on ``box`` with ``RETURN_PATH`` (``extra`` overrides)."""
    body = {
        "enabled": True,
        "imap_host": box.server.host,
        "imap_port": box.server.port,
        "imap_ssl": False,
        "imap_user": box.user,
        "imap_password": box.password,
        "imap_folder": box.folder,
        "return_path": RETURN_PATH,
        **extra,
    }
    response = await client.post("/instance/set_bounce_config", json=body)
    assert response.status == 200, response.json


async def send(
    client: ApiClient,
    smtp: Any,
    msg_id: str,
    to: list[str],
    tenant_id: str = "acme",
    *,
    within: float = 30.0,
    **fields: Any,
) -> Sent:
    """Queue a message through account ``smtp``, have it sent (``instance/run_now``) and return
    what the sink got."""
    message = {
        "id": msg_id,
        "tenant_id": tenant_id,
        "account_id": "smtp",
        "from": "orders@acme-shop.example",
        "to": to,
        "subject": "Your order",
        "body": "hello",
        **fields,
    }
    before = len(smtp.handler.messages)  # before queueing: a pending run_now may send at once
    response = await client.post("/messages/add", json=message)
    assert response.status == 200, response.json
    status = await dispatch(client, tenant_id, msg_id, within=within)
    assert status == "sent" and len(smtp.handler.messages) == before + 1, (
        f"the message was not sent: {status}"
    )
    received = smtp.handler.messages[-1]
    parsed = email.message_from_bytes(received.content)
    return Sent(
        tenant_id,
        msg_id,
        str(parsed["Message-ID"]).strip(),
        received.mail_from,
        list(received.rcpt_tos),
    )


async def dispatch(client: ApiClient, tenant_id: str, msg_id: str, *, within: float = 30.0) -> str:
    """Ask for an immediate send round until the message is ``sent`` or in ``error``; its status
    (``pending``/``deferred``/``sending`` when ``within`` seconds were not enough)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        await client.post("/instance/run_now", json={})
        response = await client.get("/messages/get", tenant_id=tenant_id, message_id=msg_id)
        assert response.status == 200, response.json
        status = str(response.json["status"])
        if status in ("sent", "error") or loop.time() > deadline:
            return status
        await asyncio.sleep(0.02)


async def history(client: ApiClient, tenant_id: str, msg_id: str) -> dict[str, Any]:
    """The message object with its history."""
    response = await client.get(
        "/messages/get", tenant_id=tenant_id, message_id=msg_id, include_history=True
    )
    assert response.status == 200, response.json
    result: dict[str, Any] = response.json
    return result


def bounces_of(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``bounce`` events of a message object with history."""
    return [e for e in message["history"] if e["event_type"] == "bounce"]


async def poll(mp: MailProxy) -> None:
    """Read the bounce mailbox once, as the receipt loop does (a fresh handler each time, like
    a restarted process)."""
    handler = BounceMailboxHandler.from_kernel(mp)
    try:
        await handler.poll()
    finally:
        await handler.aclose()
