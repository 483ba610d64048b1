"""End to end with real peers: a message sent through a PEC account to an SMTP sink, its receipts
APPENDed into the account's mailbox on a private Dovecot, read by the ``pec`` receipt handler,
recorded in the message's history in mailbox order and reported to a real client application."""

from __future__ import annotations

import asyncio
import email
import email.policy
import time
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa

from mailproxy_core import MailProxy
from mailproxy_core.testing.client import ApiClient
from mailproxy_core.testing.dispatch import dispatch_now
from mailproxy_ee_imap.testing import DovecotServer, eventually
from mailproxy_ee_pec import PecReceiptHandler, PecSettings, idle, record_timeouts
from mailproxy_ee_pec.tables import pec_accounts
from mailproxy_ee_pec.testing import pec_receipt

RCPT = "mario.rossi@pec.cliente-rossi.example"
RCPT2 = "anna.bianchi@pec.altro.example"


@dataclass
class Sent:
    """A message the service sent through a PEC account."""

    tenant_id: str
    id: str
    message_id: str  # the Message-ID header the SMTP sink received


async def _pec_tenant(
    mp_client: ApiClient,
    smtp: Any,
    dovecot: DovecotServer,
    *,
    tenant_id: str,
    user: str,
    client_url: str | None = None,
    account_id: str = "pec",
    imap_password: str | None = None,
) -> str:
    """A tenant with one PEC account whose mailbox is a fresh folder of ``user``; the folder."""
    tenant: dict[str, Any] = {"id": tenant_id}
    if client_url:
        tenant["client_base_url"] = client_url
    assert (await mp_client.post("/tenants/add", json=tenant)).status == 200
    folder = dovecot.new_folder(user)
    response = await mp_client.post(
        "/accounts/add_pec",
        json={
            "tenant_id": tenant_id,
            "id": account_id,
            "host": "127.0.0.1",
            "port": smtp.port,
            "use_tls": False,
            "imap_host": dovecot.host,
            "imap_port": dovecot.port,
            "imap_ssl": False,
            "imap_user": user,
            "imap_password": imap_password or dovecot.users[user],
            "imap_folder": folder,
        },
    )
    assert response.status == 200, response.json
    return folder


async def _send(
    mp_client: ApiClient, mp: MailProxy, smtp: Any, tenant_id: str, msg_id: str, to: list[str]
) -> Sent:
    response = await mp_client.post(
        "/messages/add",
        json={
            "id": msg_id,
            "tenant_id": tenant_id,
            "account_id": "pec",
            "from": "amministrazione@pec.acme-shop.example",
            "to": to,
            "subject": "Fattura n. 2025/0147",
            "body": "in allegato la fattura",
        },
    )
    assert response.status == 200, response.json
    before = len(smtp.handler.messages)
    await dispatch_now(mp)
    assert len(smtp.handler.messages) == before + 1
    sent = email.message_from_bytes(smtp.handler.messages[-1].content, policy=email.policy.default)
    return Sent(tenant_id, msg_id, str(sent["Message-ID"]).strip())


async def _history(mp_client: ApiClient, sent: Sent) -> list[dict[str, Any]]:
    response = await mp_client.get(
        "/messages/get", tenant_id=sent.tenant_id, message_id=sent.id, include_history=True
    )
    assert response.status == 200, response.json
    return [e for e in response.json["history"] if e["event_type"].startswith("pec_")]


async def _poll(mp: MailProxy) -> None:
    await PecReceiptHandler.from_kernel(mp).poll()


async def _reported(app: Any, count: int, mp_client: ApiClient) -> list[dict[str, Any]]:
    async def entries() -> list[dict[str, Any]]:
        return [e for e in app.acknowledged_entries() if "pec_event" in e]

    async def run_now() -> None:
        await mp_client.post("/instance/run_now", json={})

    return await eventually(entries, until=lambda got: len(got) >= count, nudge=run_now, within=10)


async def _first_events(mp_client: ApiClient, sent: Sent, within: float) -> list[str]:
    """The types of ``sent``'s PEC events, once it has any (nothing asked: the kernel polls)."""
    events = await eventually(lambda: _history(mp_client, sent), within=within, interval=0.1)
    return [e["event_type"] for e in events]


async def test_receipts_become_events_in_mailbox_order_and_reach_the_client_app(
    mp_client: ApiClient,
    mp_kernel: MailProxy,
    smtp_server: Any,
    dovecot: DovecotServer,
    client_app: Any,
) -> None:
    smtp = await smtp_server()
    app = client_app()
    folder = await _pec_tenant(
        mp_client, smtp, dovecot, tenant_id="acme", user="user1", client_url=app.url
    )
    sent = await _send(mp_client, mp_kernel, smtp, "acme", "invoice-147", [RCPT, RCPT2])
    mid = sent.message_id
    incoming = [
        pec_receipt(receipt="accettazione", msgid=mid, recipient=RCPT),
        pec_receipt(
            receipt="posta-certificata",
            msgid=mid,
            recipient=RCPT,
            x_ricevuta=None,
            x_trasporto="posta-certificata",
        ),
        b"From: someone@example.com\r\nSubject: hello\r\nMessage-ID: <x1@example.com>\r\n"
        b"\r\nhi\r\n",
        pec_receipt(receipt="presa-in-carico", msgid=mid, recipient=RCPT, body_encoding="base64"),
        pec_receipt(receipt="avvenuta-consegna", msgid=mid, recipient=RCPT, html=True),
        pec_receipt(
            receipt="preavviso-errore-consegna", msgid=mid, recipient=RCPT2, x_ricevuta=None
        ),
        pec_receipt(
            receipt="errore-consegna",
            msgid=mid,
            recipient=RCPT2,
            x_ricevuta=None,
            subject="=?utf-8?Q?AVVISO_DI_MANCATA_CONSEGNA=3A_Fattura?=",
            errore="no-dest",
            errore_esteso="5.1.1 - casella di posta inesistente",
            daticert_encoding="base64",
        ),
        pec_receipt(receipt="accettazione", msgid="<unknown@elsewhere.example>", recipient=RCPT),
    ]
    dovecot.append(incoming, folder, "user1")

    await _poll(mp_kernel)

    history = await _history(mp_client, sent)
    assert [(e["event_type"], e["description"]) for e in history] == [
        ("pec_acceptance", "accettazione"),
        ("pec_acceptance", "presa-in-carico"),
        ("pec_delivery", f"avvenuta-consegna: {RCPT}"),
        ("pec_error", "5.1.1 - casella di posta inesistente"),
    ]
    assert history[2]["metadata"]["recipient"] == RCPT
    assert history[3]["metadata"]["recipient"] == RCPT2
    assert history[3]["metadata"]["receipt"] == "errore-consegna"
    assert history[0]["metadata"]["provider"] == "GESTORE ALFA S.p.A."
    assert history[0]["metadata"]["receipt_ts"] > 0

    # every message was examined once and flagged \Seen, none deleted
    with dovecot.imap("user1") as imap:
        imap.select(f'"{folder}"')
        _, unseen = imap.search(None, "UNSEEN")
        _, every = imap.search(None, "ALL")
    assert unseen[0].split() == [] and len(every[0].split()) == len(incoming)
    row = await mp_kernel.data.fetch_one(sa.select(pec_accounts))
    assert row is not None and row["last_uid"] == len(incoming)
    assert row["last_error"] is None and row["last_poll_ts"]

    listed = (await mp_client.get("/accounts/list_pec", tenant_id="acme")).json
    assert listed[0]["last_poll_ts"] == row["last_poll_ts"] and listed[0]["last_error"] is None

    entries = await _reported(app, 4, mp_client)
    assert [(e["pec_event"], e["pec_details"]) for e in entries] == [
        (e["event_type"], e["description"]) for e in history
    ]
    assert all(e["id"] == "invoice-147" and e["tenant_id"] == "acme" for e in entries)
    assert all(isinstance(e["pec_ts"], int) for e in entries)

    # re-reading: a new round adds nothing; forgetting the position re-reads and adds nothing
    await _poll(mp_kernel)
    await mp_kernel.data.execute(sa.update(pec_accounts).values(last_uid=0))
    await _poll(mp_kernel)
    assert len(await _history(mp_client, sent)) == 4


async def test_a_forged_reference_to_another_tenants_message_gives_nothing(
    mp_client: ApiClient, mp_kernel: MailProxy, smtp_server: Any, dovecot: DovecotServer
) -> None:
    smtp = await smtp_server()
    await _pec_tenant(mp_client, smtp, dovecot, tenant_id="acme", user="user2")
    folder_b = await _pec_tenant(mp_client, smtp, dovecot, tenant_id="evil", user="user3")
    victim = await _send(mp_client, mp_kernel, smtp, "acme", "m1", [RCPT])
    forged = [
        pec_receipt(receipt="non-accettazione", msgid=victim.message_id, recipient=RCPT),
        pec_receipt(receipt="avvenuta-consegna", msgid=victim.message_id, recipient=RCPT),
    ]
    dovecot.append(forged, folder_b, "user3")
    await _poll(mp_kernel)
    assert await _history(mp_client, victim) == []


async def test_a_failing_mailbox_never_stops_the_others(
    mp_client: ApiClient, mp_kernel: MailProxy, smtp_server: Any, dovecot: DovecotServer
) -> None:
    smtp = await smtp_server()
    await _pec_tenant(
        mp_client, smtp, dovecot, tenant_id="broken", user="user4", imap_password="wrong-pass-77"
    )
    folder = await _pec_tenant(mp_client, smtp, dovecot, tenant_id="fine", user="user5")
    sent = await _send(mp_client, mp_kernel, smtp, "fine", "m1", [RCPT])
    dovecot.append(
        pec_receipt(receipt="accettazione", msgid=sent.message_id, recipient=RCPT), folder, "user5"
    )

    await _poll(mp_kernel)

    assert [e["event_type"] for e in await _history(mp_client, sent)] == ["pec_acceptance"]
    broken = (await mp_client.get("/accounts/list_pec", tenant_id="broken")).json[0]
    assert broken["last_error"] and "wrong-pass-77" not in broken["last_error"]
    assert broken["last_poll_ts"] is None
    fine = (await mp_client.get("/accounts/list_pec", tenant_id="fine")).json[0]
    assert fine["last_error"] is None and fine["last_poll_ts"]

    # fixed: the next round reads it and clears last_error
    await mp_client.post(
        "/accounts/add_pec",
        json={
            "tenant_id": "broken",
            "id": "pec",
            "host": "127.0.0.1",
            "port": smtp.port,
            "use_tls": False,
            "imap_host": dovecot.host,
            "imap_port": dovecot.port,
            "imap_ssl": False,
            "imap_user": "user4",
            "imap_password": dovecot.users["user4"],
            "imap_folder": broken["imap_folder"],
        },
    )
    await _poll(mp_kernel)
    repaired = (await mp_client.get("/accounts/list_pec", tenant_id="broken")).json[0]
    assert repaired["last_error"] is None and repaired["last_poll_ts"]


async def test_two_processes_polling_the_same_mailbox_record_each_receipt_once(
    mp_client: ApiClient, mp_kernel: MailProxy, smtp_server: Any, dovecot: DovecotServer
) -> None:
    smtp = await smtp_server()
    folder = await _pec_tenant(mp_client, smtp, dovecot, tenant_id="acme", user="user6")
    sent = await _send(mp_client, mp_kernel, smtp, "acme", "m1", [RCPT])
    receipts = [
        pec_receipt(receipt="accettazione", msgid=sent.message_id, recipient=RCPT),
        pec_receipt(receipt="avvenuta-consegna", msgid=sent.message_id, recipient=RCPT),
    ]
    dovecot.append(receipts, folder, "user6")
    first, second = (
        PecReceiptHandler.from_kernel(mp_kernel),
        PecReceiptHandler.from_kernel(mp_kernel),
    )
    await asyncio.gather(first.poll(), second.poll())
    assert [e["event_type"] for e in await _history(mp_client, sent)] == [
        "pec_acceptance",
        "pec_delivery",
    ]


async def test_a_receipt_without_message_id_is_deduplicated_by_its_uid(
    mp_client: ApiClient, mp_kernel: MailProxy, smtp_server: Any, dovecot: DovecotServer
) -> None:
    smtp = await smtp_server()
    folder = await _pec_tenant(mp_client, smtp, dovecot, tenant_id="acme", user="user7")
    sent = await _send(mp_client, mp_kernel, smtp, "acme", "m1", [RCPT])
    raw = pec_receipt(receipt="accettazione", msgid=sent.message_id, recipient=RCPT)
    raw = b"\r\n".join(line for line in raw.split(b"\r\n") if not line.startswith(b"Message-ID:"))
    dovecot.append(raw, folder, "user7")
    await _poll(mp_kernel)
    await mp_kernel.data.execute(sa.update(pec_accounts).values(last_uid=0))
    await _poll(mp_kernel)
    assert [e["event_type"] for e in await _history(mp_client, sent)] == ["pec_acceptance"]


# ------------------------------------------------------------------ pec_timeout

TIMEOUT = 600


def _settings(mp: MailProxy) -> PecSettings:
    """The instance's settings with the timeout on (the background task itself stays off)."""
    return PecSettings(acceptance_timeout=TIMEOUT)


async def test_pec_timeout_fires_once_and_a_later_acceptance_is_still_recorded(
    mp_client: ApiClient, mp_kernel: MailProxy, smtp_server: Any, dovecot: DovecotServer
) -> None:
    smtp = await smtp_server()
    folder = await _pec_tenant(mp_client, smtp, dovecot, tenant_id="acme", user="user8")
    late = await _send(mp_client, mp_kernel, smtp, "acme", "late", [RCPT])
    accepted = await _send(mp_client, mp_kernel, smtp, "acme", "accepted", [RCPT])
    dovecot.append(
        pec_receipt(receipt="accettazione", msgid=accepted.message_id, recipient=RCPT),
        folder,
        "user8",
    )
    await _poll(mp_kernel)
    now = int(time.time())

    assert await record_timeouts(mp_kernel, _settings(mp_kernel), now=now + TIMEOUT - 5) == 0
    assert await record_timeouts(mp_kernel, _settings(mp_kernel), now=now + TIMEOUT + 5) == 1
    assert await record_timeouts(mp_kernel, _settings(mp_kernel), now=now + 2 * TIMEOUT) == 0

    timeout_events = await _history(mp_client, late)
    assert [(e["event_type"], e["description"]) for e in timeout_events] == [
        ("pec_timeout", f"no acceptance receipt within {TIMEOUT} seconds")
    ]
    assert timeout_events[0]["metadata"]["timeout"] == TIMEOUT
    assert [e["event_type"] for e in await _history(mp_client, accepted)] == ["pec_acceptance"]

    dovecot.append(
        pec_receipt(receipt="accettazione", msgid=late.message_id, recipient=RCPT), folder, "user8"
    )
    await _poll(mp_kernel)
    assert [e["event_type"] for e in await _history(mp_client, late)] == [
        "pec_timeout",
        "pec_acceptance",
    ]
    assert await record_timeouts(mp_kernel, _settings(mp_kernel), now=now + 3 * TIMEOUT) == 0


async def test_messages_of_ordinary_accounts_never_time_out(
    mp_client: ApiClient, mp_kernel: MailProxy, smtp_server: Any
) -> None:
    smtp = await smtp_server()
    await mp_client.post("/tenants/add", json={"id": "acme"})
    await mp_client.post(
        "/accounts/add",
        json={
            "tenant_id": "acme",
            "id": "pec",
            "host": "127.0.0.1",
            "port": smtp.port,
            "use_tls": False,
        },
    )
    sent = await _send(mp_client, mp_kernel, smtp, "acme", "m1", [RCPT])
    later = int(time.time()) + 10 * TIMEOUT
    assert await record_timeouts(mp_kernel, _settings(mp_kernel), now=later) == 0
    assert await _history(mp_client, sent) == []


async def test_a_zero_timeout_is_off(mp_kernel: MailProxy) -> None:
    off = PecSettings(acceptance_timeout=0)
    assert await record_timeouts(mp_kernel, off, now=int(time.time()) + 10**9) == 0


async def test_run_now_makes_the_kernel_poll_the_pec_mailboxes(
    mp_client: ApiClient, mp_kernel: MailProxy, smtp_server: Any, dovecot: DovecotServer
) -> None:
    smtp = await smtp_server()
    folder = await _pec_tenant(mp_client, smtp, dovecot, tenant_id="acme", user="user1")
    sent = await _send(mp_client, mp_kernel, smtp, "acme", "m1", [RCPT])
    dovecot.append(
        pec_receipt(receipt="accettazione", msgid=sent.message_id, recipient=RCPT), folder, "user1"
    )
    assert (await mp_client.post("/instance/run_now", json={})).status == 200
    assert await _first_events(mp_client, sent, within=10) == ["pec_acceptance"]
    status = mp_kernel.receipt_handler_status("pec")
    assert status is not None and status.last_error is None


async def test_changing_the_folder_starts_over_without_duplicate_events(
    mp_client: ApiClient, mp_kernel: MailProxy, smtp_server: Any, dovecot: DovecotServer
) -> None:
    smtp = await smtp_server()
    folder = await _pec_tenant(mp_client, smtp, dovecot, tenant_id="acme", user="user2")
    sent = await _send(mp_client, mp_kernel, smtp, "acme", "m1", [RCPT])
    acceptance = pec_receipt(receipt="accettazione", msgid=sent.message_id, recipient=RCPT)
    dovecot.append(acceptance, folder, "user2")
    await _poll(mp_kernel)
    before = await mp_kernel.data.fetch_one(sa.select(pec_accounts))
    assert before is not None and before["last_uid"] == 1

    moved = dovecot.new_folder("user2")  # the same receipt, then a new one, in another folder
    delivery = pec_receipt(receipt="avvenuta-consegna", msgid=sent.message_id, recipient=RCPT)
    dovecot.append([acceptance, delivery], moved, "user2")
    body = (await mp_client.get("/accounts/get", tenant_id="acme", account_id="pec")).json
    changed = await mp_client.post(
        "/accounts/add_pec",
        json={
            "tenant_id": "acme",
            "id": "pec",
            "host": "127.0.0.1",
            "port": smtp.port,
            "use_tls": False,
            "imap_host": body["imap_host"],
            "imap_port": body["imap_port"],
            "imap_ssl": False,
            "imap_user": "user2",
            "imap_password": dovecot.users["user2"],
            "imap_folder": moved,
        },
    )
    assert changed.status == 200, changed.json
    await _poll(mp_kernel)
    assert [e["event_type"] for e in await _history(mp_client, sent)] == [
        "pec_acceptance",
        "pec_delivery",
    ]
    after = await mp_kernel.data.fetch_one(sa.select(pec_accounts))
    assert after is not None and after["last_uid"] == 2 and moved in after["mailbox_key"]


@pytest.mark.parametrize(
    "pec_sections", [{"poll_interval": 0.2, "acceptance_timeout": 1}], indirect=True
)
async def test_the_background_task_records_pec_timeout(
    mp_client: ApiClient, mp_kernel: MailProxy, smtp_server: Any, dovecot: DovecotServer
) -> None:
    smtp = await smtp_server()
    await _pec_tenant(mp_client, smtp, dovecot, tenant_id="acme", user="user3")
    sent = await _send(mp_client, mp_kernel, smtp, "acme", "m1", [RCPT])
    events = await eventually(lambda: _history(mp_client, sent), within=10, interval=0.1)
    assert [(e["event_type"], e["metadata"]["timeout"]) for e in events] == [("pec_timeout", 1)]
    await asyncio.sleep(0.5)  # more rounds of the task add nothing
    assert len(await _history(mp_client, sent)) == 1


async def test_idle_reads_a_new_receipt_without_waiting_for_the_next_round(
    mp_client: ApiClient, mp_kernel: MailProxy, smtp_server: Any, dovecot: DovecotServer
) -> None:
    # poll_interval is 60 s and the instance is in test mode (no timed polls at all): only the
    # IDLE watcher's request can make the handler poll.
    smtp = await smtp_server()
    folder = await _pec_tenant(mp_client, smtp, dovecot, tenant_id="acme", user="user4")
    sent = await _send(mp_client, mp_kernel, smtp, "acme", "m1", [RCPT])
    await asyncio.sleep(idle.RESYNC_SECONDS + 1)  # the watcher has connected and is in IDLE
    dovecot.append(
        pec_receipt(receipt="accettazione", msgid=sent.message_id, recipient=RCPT), folder, "user4"
    )
    assert await _first_events(mp_client, sent, within=10) == ["pec_acceptance"]
