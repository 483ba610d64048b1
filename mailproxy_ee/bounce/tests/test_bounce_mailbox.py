"""End to end with real peers: messages sent to an SMTP sink with the bounce return path, their
notices APPENDed into the bounce mailbox on a private Dovecot, read by the ``ee_bounce`` handler,
recorded as ``bounce`` events, reported to a real client application, and the suppression list
applied to the next sends."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mailproxy_core import MailProxy
from mailproxy_core.testing.client import ApiClient
from mailproxy_core.testing.dispatch import dispatch_now
from mailproxy_ee_bounce.handler import BounceMailboxError
from mailproxy_ee_bounce.testing import (
    RETURN_PATH,
    Sent,
    bounces_of,
    configure,
    fill_placeholders,
    history,
    poll,
    send,
    setup_tenant,
)
from mailproxy_ee_imap.testing import DovecotServer, TestMailbox, eventually

DATA = Path(__file__).parent / "data"
SHARED = json.loads((DATA / "expected.json").read_text())
RCPT = "jane.doe@example.test"
OTHER = "sam.lee@example.test"


def notice(name: str, sent: Sent, rcpt: str = RCPT) -> bytes:
    """A sample notice of ``tests/data`` about ``sent``."""
    return fill_placeholders((DATA / name).read_bytes(), sent, rcpt=rcpt, rcpt2=OTHER)


async def test_notices_become_bounce_events_reported_to_the_client_app(
    mp_client: ApiClient,
    mp_kernel: MailProxy,
    smtp_server: Any,
    imap_mailbox: TestMailbox,
    client_app: Any,
) -> None:
    smtp = await smtp_server()
    app = client_app()
    await setup_tenant(mp_client, smtp, client_url=app.url)
    await configure(mp_client, imap_mailbox)
    sent = await send(mp_client, smtp, "order-1", [RCPT])
    assert sent.mail_from == RETURN_PATH  # the bounce return path is the envelope sender
    own = await send(mp_client, smtp, "order-2", [RCPT], return_path="own@acme-shop.example")
    assert own.mail_from == "own@acme-shop.example"  # a message's own return path wins
    imap_mailbox.append(notice("bounces/postfix_550_511_user_unknown.eml", sent))
    await poll(mp_kernel)

    message = await history(mp_client, "acme", "order-1")
    assert message["status"] == "sent"  # a bounce never changes the status
    [event] = bounces_of(message)
    assert event["metadata"]["bounce_type"] == "hard"
    assert event["metadata"]["bounce_code"] == "5.1.1"
    assert event["metadata"]["recipient"] == RCPT
    assert event["metadata"]["source_message_id"].startswith("<4dG8kR0mZtz9sWc@")
    assert "User unknown" in event["description"]
    assert bounces_of(await history(mp_client, "acme", "order-2")) == []

    async def reported() -> list[dict[str, Any]]:
        return [e for e in app.acknowledged_entries() if "bounce_ts" in e]

    async def run_now() -> None:
        await mp_client.post("/instance/run_now", json={})

    [entry] = await eventually(reported, nudge=run_now, within=5.0)
    assert entry["id"] == "order-1" and entry["tenant_id"] == "acme"
    assert (entry["bounce_type"], entry["bounce_code"]) == ("hard", "5.1.1")
    assert "User unknown" in entry["bounce_reason"]
    config = (await mp_client.get("/instance/get_bounce_config")).json
    assert config["last_error"] is None and isinstance(config["last_poll_ts"], int)


async def test_every_shared_sample_gives_its_expected_event(
    mp_client: ApiClient,
    mp_kernel: MailProxy,
    bounce_smtp: Any,
    imap_mailbox: TestMailbox,
) -> None:
    smtp = bounce_smtp
    sent = {}
    # every message first: a hard bounce read meanwhile would suppress RCPT for the next ones
    for i, name in enumerate(sorted(SHARED)):
        sent[name] = await send(mp_client, smtp, f"m{i}", [RCPT])
    imap_mailbox.append([notice(name, sent[name]) for name in sorted(SHARED)])
    await poll(mp_kernel)
    for name, expected in SHARED.items():
        events = bounces_of(await history(mp_client, "acme", sent[name].id))
        if expected["kind"] == "not_bounce":
            assert events == [], name
            continue
        [event] = events
        meta = event["metadata"]
        assert meta["bounce_type"] == expected["bounce_type"], name
        assert meta["recipient"] == RCPT, name
        assert event["description"], name
        if expected["kind"] == "complaint":
            assert meta["bounce_code"] is None
            assert meta["feedback_type"] == expected["feedback_type"]
        else:
            assert meta["bounce_code"] in expected["codes_accepted"], name
    delayed = bounces_of(
        await history(mp_client, "acme", sent["bounces/postfix_delayed_447.eml"].id)
    )
    assert delayed[0]["metadata"]["action"] == "delayed"


async def test_rereading_the_mailbox_adds_no_second_event(
    mp_client: ApiClient,
    mp_kernel: MailProxy,
    bounce_smtp: Any,
    imap_mailbox: TestMailbox,
) -> None:
    smtp = bounce_smtp
    sent = await send(mp_client, smtp, "order-1", [RCPT])
    no_id = notice("own/yahoo_style_no_message_id.eml", sent)
    imap_mailbox.append([notice("bounces/gmail_550_511_with_original.eml", sent), no_id])
    await poll(mp_kernel)
    assert len(bounces_of(await history(mp_client, "acme", "order-1"))) == 2
    await poll(mp_kernel)  # a restarted handler: the position is stored
    # a lost position (e.g. the row restored from a backup): everything is examined again
    await mp_kernel.data.execute("UPDATE ee_bounce_config SET last_uid = 0")
    await poll(mp_kernel)
    assert len(bounces_of(await history(mp_client, "acme", "order-1"))) == 2


async def test_unrelated_mail_and_mail_for_deleted_tenants_never_block_the_bounces_after_it(
    mp_client: ApiClient,
    mp_kernel: MailProxy,
    smtp_server: Any,
    imap_mailbox: TestMailbox,
) -> None:
    smtp = await smtp_server()
    await setup_tenant(mp_client, smtp)
    await setup_tenant(mp_client, smtp, tenant_id="gone")
    await configure(mp_client, imap_mailbox)
    doomed = await send(mp_client, smtp, "old-1", [RCPT], tenant_id="gone")
    assert (await mp_client.post("/tenants/delete", json={"tenant_id": "gone"})).status == 200
    sent = await send(mp_client, smtp, "order-1", [RCPT])
    imap_mailbox.append(
        [
            notice("own/unrelated_newsletter.eml", sent),
            notice("bounces/autoreply_out_of_office.eml", sent),
            notice("bounces/exim_452_422_mailbox_full.eml", doomed),
            b"\xff\xfe not mail at all \x00\r\n",
            notice("bounces/exchange_550_571_not_authorized.eml", sent),
        ]
    )
    await poll(mp_kernel)
    [event] = bounces_of(await history(mp_client, "acme", "order-1"))
    assert event["metadata"]["bounce_code"] == "5.7.1"
    with imap_mailbox.server.imap(imap_mailbox.user) as client:
        client.select(imap_mailbox.folder, readonly=True)
        status, data = client.search(None, "UNSEEN")
        assert status == "OK" and data == [b""]  # every message examined and flagged \Seen


async def test_hard_bounce_suppresses_the_recipient_until_deleted(
    mp_client: ApiClient,
    mp_kernel: MailProxy,
    bounce_smtp: Any,
    imap_mailbox: TestMailbox,
) -> None:
    smtp = bounce_smtp
    first = await send(mp_client, smtp, "m1", [RCPT])
    imap_mailbox.append(notice("bounces/postfix_550_511_user_unknown.eml", first))
    await poll(mp_kernel)
    [entry] = (await mp_client.get("/suppressions/list", tenant_id="acme")).json
    assert (entry["address"], entry["reason"], entry["bounce_code"]) == (
        RCPT, "hard_bounce", "5.1.1",
    )  # fmt: skip

    second = await send(mp_client, smtp, "m2", [RCPT, OTHER])
    assert second.rcpt_tos == [OTHER]  # sent without the suppressed recipient
    [sent_event] = [
        e for e in (await history(mp_client, "acme", "m2"))["history"] if e["event_type"] == "sent"
    ]
    assert sent_event["metadata"]["suppressed"] == [RCPT]

    response = await mp_client.post(
        "/messages/add",
        json={"id": "m3", "tenant_id": "acme", "account_id": "smtp", "to": [RCPT],
              "from": "orders@acme-shop.example", "subject": "s", "body": "b"},
    )  # fmt: skip
    assert response.status == 200
    before = len(smtp.handler.messages)
    await dispatch_now(mp_kernel)
    assert len(smtp.handler.messages) == before  # nothing left to send to
    only_suppressed = await history(mp_client, "acme", "m3")
    assert only_suppressed["status"] == "error"
    [failed] = [e for e in only_suppressed["history"] if e["event_type"] == "error"]
    assert failed["description"] == f"suppressed: {RCPT}"

    removed = await mp_client.post(
        "/suppressions/delete", json={"tenant_id": "acme", "address": RCPT}
    )
    assert removed.json["removed"] == 1
    again = await send(mp_client, smtp, "m4", [RCPT, OTHER])
    assert sorted(again.rcpt_tos) == sorted([RCPT, OTHER])


async def test_soft_bounces_suppress_nothing_and_complaints_do(
    mp_client: ApiClient,
    mp_kernel: MailProxy,
    bounce_smtp: Any,
    imap_mailbox: TestMailbox,
) -> None:
    smtp = bounce_smtp
    soft = await send(mp_client, smtp, "m1", [RCPT])
    complained = await send(mp_client, smtp, "m2", [OTHER])
    imap_mailbox.append(
        [
            notice("bounces/exim_452_422_mailbox_full.eml", soft),
            notice("bounces/postfix_delayed_447.eml", soft),
            notice("bounces/arf_feedback_abuse_complaint.eml", complained, rcpt=OTHER),
        ]
    )
    await poll(mp_kernel)
    listed = (await mp_client.get("/suppressions/list", tenant_id="acme")).json
    assert [(e["address"], e["reason"]) for e in listed] == [(OTHER, "complaint")]


async def test_wrong_password_shows_in_last_error_without_the_password(
    mp_client: ApiClient, mp_kernel: MailProxy, imap_mailbox: TestMailbox
) -> None:
    wrong = "Wr0ng-imap-secret"
    await configure(mp_client, imap_mailbox, imap_password=wrong)
    with pytest.raises(BounceMailboxError) as caught:
        await poll(mp_kernel)
    assert wrong not in str(caught.value)
    config = (await mp_client.get("/instance/get_bounce_config")).json
    assert config["last_error"] and "login" in config["last_error"].lower()
    assert wrong not in json.dumps(config)
    await configure(mp_client, imap_mailbox)  # the right password: the next poll succeeds
    await poll(mp_kernel)
    config = (await mp_client.get("/instance/get_bounce_config")).json
    assert config["last_error"] is None and config["last_poll_ts"] is not None


async def test_unreachable_server_and_missing_folder_show_in_last_error(
    mp_client: ApiClient, mp_kernel: MailProxy, dovecot: DovecotServer
) -> None:
    from mailproxy_ee_imap.testing import free_port

    box = TestMailbox(dovecot, "mailbox", "NoSuchFolder")
    await configure(mp_client, box)
    with pytest.raises(BounceMailboxError, match="NoSuchFolder"):
        await poll(mp_kernel)
    await configure(mp_client, box, imap_port=free_port(), imap_folder="INBOX")
    with pytest.raises(BounceMailboxError, match="cannot talk to"):
        await poll(mp_kernel)
    assert (
        "cannot talk to" in (await mp_client.get("/instance/get_bounce_config")).json["last_error"]
    )


async def test_disabled_mailbox_is_not_read_and_return_path_not_used(
    mp_client: ApiClient,
    mp_kernel: MailProxy,
    smtp_server: Any,
    imap_mailbox: TestMailbox,
) -> None:
    smtp = await smtp_server()
    await setup_tenant(mp_client, smtp)
    await configure(mp_client, imap_mailbox, enabled=False)
    sent = await send(mp_client, smtp, "m1", [RCPT])
    assert sent.mail_from == "orders@acme-shop.example"
    imap_mailbox.append(notice("bounces/postfix_550_511_user_unknown.eml", sent))
    await poll(mp_kernel)
    assert bounces_of(await history(mp_client, "acme", "m1")) == []
    assert (await mp_client.get("/instance/get_bounce_config")).json["last_poll_ts"] is None


async def test_a_changed_folder_is_read_from_its_start(
    mp_client: ApiClient,
    mp_kernel: MailProxy,
    smtp_server: Any,
    dovecot: DovecotServer,
) -> None:
    smtp = await smtp_server()
    await setup_tenant(mp_client, smtp)
    first = TestMailbox(dovecot, "mailbox", dovecot.new_folder())
    second = TestMailbox(dovecot, "mailbox", dovecot.new_folder())
    await configure(mp_client, first)
    a = await send(mp_client, smtp, "a", [RCPT])
    b = await send(mp_client, smtp, "b", [RCPT])
    first.append([notice("own/unrelated_newsletter.eml", a)] * 3)
    first.append(notice("bounces/postfix_550_511_user_unknown.eml", a))
    await poll(mp_kernel)
    second.append(notice("bounces/gmail_550_511_with_original.eml", b))  # UID 1 there
    await configure(mp_client, second)
    await poll(mp_kernel)
    assert len(bounces_of(await history(mp_client, "acme", "a"))) == 1
    assert len(bounces_of(await history(mp_client, "acme", "b"))) == 1
