"""The handler as the kernel runs it: the receipt loop polls on request (``run_now``), IDLE makes
a new notice arrive without asking, VERP correlates a notice that carries nothing else, and two
``serve`` processes on one database read the mailbox in one of them only."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest

from mailproxy_core import MailProxy, Settings
from mailproxy_core.app import create_app, kernel_of
from mailproxy_core.testing.client import ApiClient
from mailproxy_core.testing.db import require_postgres, url_with_schema
from mailproxy_core.testing.plugin import ADMIN_TOKEN, admin_token_plugins
from mailproxy_ee_bounce.testing import (
    RETURN_PATH,
    bounces_of,
    configure,
    history,
    send,
    setup_tenant,
)
from mailproxy_ee_imap.testing import TestMailbox, eventually

RCPT = "jane.doe@example.test"
OTHER = "sam.lee@example.test"
ENCRYPTION_KEY = base64.b64encode(bytes(range(32))).decode()


@pytest.fixture
def bounce_section() -> dict[str, Any]:
    return {"poll_interval": 60, "idle": True, "verp": True, "imap_timeout": 5.0}


def plain_notice(to: str, rcpt: str) -> bytes:
    """A plain-text failure notice that names nothing of the original but the recipient."""
    return (
        f"Return-Path: <>\r\nFrom: MAILER-DAEMON@mx.example.test\r\nTo: {to}\r\n"
        "Subject: Undelivered mail\r\nDate: Mon, 1 Dec 2025 10:00:00 +0000\r\n\r\n"
        f"Delivery to the following recipient failed permanently:\r\n\r\n    {rcpt}\r\n\r\n"
        "550 5.1.1 mailbox unavailable\r\n"
    ).encode()


async def wait_for_bounces(
    client: ApiClient, msg_id: str, count: int = 1, *, ask: bool = True, within: float = 15.0
) -> list[dict[str, Any]]:
    """The bounce events of ``msg_id`` once there are ``count``; ``run_now`` between rounds
    unless ``ask`` is false (IDLE must bring them)."""

    async def bounces() -> list[dict[str, Any]]:
        return bounces_of(await history(client, "acme", msg_id))

    async def run_now() -> None:
        await client.post("/instance/run_now", json={})

    return await eventually(
        bounces,
        until=lambda events: len(events) >= count,
        nudge=run_now if ask else None,
        within=within,
        interval=0.1,
    )


async def test_verp_return_path_correlates_a_notice_without_the_original(
    mp_client: ApiClient,
    mp_kernel: MailProxy,
    bounce_smtp: Any,
    imap_mailbox: TestMailbox,
) -> None:
    smtp = bounce_smtp
    sent = await send(mp_client, smtp, "m1", [RCPT])
    pk = (await history(mp_client, "acme", "m1"))["pk"]
    local, domain = RETURN_PATH.split("@")
    assert sent.mail_from == f"{local}+m{pk}@{domain}"
    imap_mailbox.append(plain_notice(sent.mail_from, RCPT))
    [event] = await wait_for_bounces(mp_client, "m1")  # read by the receipt loop on run_now
    assert (event["metadata"]["bounce_type"], event["metadata"]["bounce_code"]) == (
        "hard", "5.1.1",
    )  # fmt: skip


async def test_idle_reads_a_new_notice_without_being_asked(
    mp_client: ApiClient,
    mp_kernel: MailProxy,
    bounce_smtp: Any,
    imap_mailbox: TestMailbox,
) -> None:
    smtp = bounce_smtp  # configuring the mailbox asked for a poll, which starts the IDLE watcher
    sent = await send(mp_client, smtp, "m1", [RCPT])
    for _ in range(100):
        status = mp_kernel.receipt_handler_status("ee_bounce")
        if status is not None and status.last_poll_ts is not None:
            break
        await asyncio.sleep(0.05)
    imap_mailbox.append(plain_notice(sent.mail_from, RCPT))
    [event] = await wait_for_bounces(mp_client, "m1", ask=False, within=10)
    assert event["metadata"]["recipient"] == RCPT
    # the watcher is in IDLE by now: the next notice is announced by the server's push
    second = await send(mp_client, smtp, "m2", [OTHER])
    await asyncio.sleep(0.5)
    imap_mailbox.append(plain_notice(second.mail_from, OTHER))
    [event] = await wait_for_bounces(mp_client, "m2", ask=False, within=10)
    assert event["metadata"]["recipient"] == OTHER


async def test_two_serve_processes_on_one_database_read_the_mailbox_in_one_only(
    smtp_server: Any, imap_mailbox: TestMailbox
) -> None:
    server = await require_postgres()
    url = url_with_schema(server, f"mp_test_bounce_two_{id(imap_mailbox):x}")
    settings = Settings.from_values(
        db=url,
        api_token=ADMIN_TOKEN,
        encryption_key=ENCRYPTION_KEY,
        test_mode=True,
        plugin_sections={"ee_bounce": {"idle": False, "imap_timeout": 5.0}},
    )
    first, second = (create_app(settings, extra_plugins=admin_token_plugins()) for _ in "12")
    async with first.test_app(), second.test_app():
        a = ApiClient(first.test_client(), token=ADMIN_TOKEN)
        b = ApiClient(second.test_client(), token=ADMIN_TOKEN)
        smtp = await smtp_server()
        await setup_tenant(a, smtp)
        await configure(a, imap_mailbox, return_path="")
        sent = await send(a, smtp, "m1", [RCPT])
        imap_mailbox.append(plain_notice("bounces@example.test", RCPT).replace(
            b"Subject:", f"In-Reply-To: {sent.message_id}\r\nSubject:".encode()
        ))  # fmt: skip
        for client in (a, b):
            await client.post("/instance/run_now", json={})
        await wait_for_bounces(b, "m1")
        statuses = [kernel_of(app).receipt_handler_status("ee_bounce") for app in (first, second)]
        assert sorted(bool(s and s.polling) for s in statuses) == [False, True]
        for client in (a, b):
            await client.post("/instance/run_now", json={})
        await asyncio.sleep(0.5)
        assert len(bounces_of(await history(b, "acme", "m1"))) == 1
        for client in (a, b):
            config = (await client.get("/instance/get_bounce_config")).json
            assert config["last_error"] is None and config["last_poll_ts"] is not None
