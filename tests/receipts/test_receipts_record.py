"""``mp.record_receipts``, ``mp.find_messages`` and ``mp.message_id_header`` on SQLite and
PostgreSQL: correlation, de-duplication, order, status untouched, the hook after the commit."""

from __future__ import annotations

from typing import Any

import pytest

from mailproxy_core import (
    EventType,
    MailProxy,
    MetaKey,
    Receipt,
    ReceiptOutcome,
    ReceiptResult,
    hookimpl,
)
from mailproxy_core.testing.client import ApiClient
from mailproxy_core.testing.dispatch import dispatch_now

from .support import enqueue, get_message, message


class ReceiptRecorder:
    """Records every ``mailproxy_receipt_received`` call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ReceiptResult]] = []

    @hookimpl
    async def mailproxy_receipt_received(self, mp, receipt, result):
        # The event is committed when the hook runs: it is already in the history.
        rows = await mp.find_messages(
            client_message_id=result.message_id, tenant_id=result.tenant_id
        )
        assert rows and rows[0].pk == result.message_pk
        self.calls.append((receipt.dedup_key, result))


@pytest.fixture
def recorder(register_plugin) -> ReceiptRecorder:
    return register_plugin(ReceiptRecorder(), name="receipt_recorder")


async def _sent(mp: MailProxy, client: ApiClient, *messages: dict[str, Any]) -> None:
    await enqueue(client, *messages)
    await dispatch_now(mp)


def bounce(dedup_key: str, **fields: Any) -> Receipt:
    return Receipt(
        event_type=EventType.BOUNCE,
        dedup_key=dedup_key,
        description="550 5.1.1 User unknown",
        metadata={
            MetaKey.BOUNCE_TYPE: "hard",
            MetaKey.BOUNCE_CODE: "5.1.1",
            MetaKey.RECIPIENT: "bob@example.com",
        },
        event_ts=1_800_000_000,
        **fields,
    )


async def test_receipt_by_message_id_appends_an_event_and_keeps_the_status(
    recorder, mp_kernel, mp_client, add_tenant
):
    await add_tenant("acme")
    await _sent(mp_kernel, mp_client, message("acme", "m1"))
    (sent,) = await mp_kernel.find_messages(client_message_id="m1", tenant_id="acme")
    assert sent.status == "sent" and sent.recipients == ("bob@example.com",)
    assert sent.sent_ts is not None

    # With or without angle brackets.
    header = sent.message_id_header
    assert header is not None and header.startswith("<") and header.endswith("@acme.example>")
    (result,) = await mp_kernel.record_receipts([bounce("n1", message_id_header=header[1:-1])])
    assert result.outcome is ReceiptOutcome.RECORDED
    assert (result.message_pk, result.tenant_id, result.message_id) == (sent.pk, "acme", "m1")

    got = await get_message(mp_client, "acme", "m1")
    assert got["status"] == "sent"
    last = got["history"][-1]
    assert last["event_type"] == "bounce" and last["event_ts"] == 1_800_000_000
    assert last["description"] == "550 5.1.1 User unknown"
    assert last["metadata"] == {
        "bounce_type": "hard",
        "bounce_code": "5.1.1",
        "recipient": "bob@example.com",
    }
    assert [key for key, _ in recorder.calls] == ["n1"]


async def test_a_receipt_seen_twice_adds_one_event(recorder, mp_kernel, mp_client, add_tenant):
    await add_tenant("acme")
    await _sent(mp_kernel, mp_client, message("acme", "m1"))
    (sent,) = await mp_kernel.find_messages(client_message_id="m1", tenant_id="acme")
    receipt = bounce("mailbox|7|42", message_pk=sent.pk)
    first = await mp_kernel.record_receipts([receipt, receipt])
    again = await mp_kernel.record_receipts([receipt])
    assert [r.outcome for r in first + again] == [
        ReceiptOutcome.RECORDED,
        ReceiptOutcome.DUPLICATE,
        ReceiptOutcome.DUPLICATE,
    ]
    history = (await get_message(mp_client, "acme", "m1"))["history"]
    assert [e["event_type"] for e in history] == ["sent", "bounce"]
    assert len(recorder.calls) == 1
    # The same key on another message is another receipt.
    await _sent(mp_kernel, mp_client, message("acme", "m2"))
    (other,) = await mp_kernel.find_messages(client_message_id="m2", tenant_id="acme")
    (result,) = await mp_kernel.record_receipts([bounce("mailbox|7|42", message_pk=other.pk)])
    assert result.outcome is ReceiptOutcome.RECORDED


async def test_receipts_of_one_call_are_recorded_in_order(mp_kernel, mp_client, add_tenant):
    await add_tenant("acme")
    await _sent(mp_kernel, mp_client, message("acme", "m1"))
    (sent,) = await mp_kernel.find_messages(client_message_id="m1", tenant_id="acme")
    receipts = [
        Receipt(
            event_type=kind,
            dedup_key=f"r{index}",
            description=kind,
            message_id_header=sent.message_id_header,
        )
        for index, kind in enumerate(
            [EventType.PEC_ACCEPTANCE, EventType.PEC_DELIVERY, EventType.PEC_ERROR]
        )
    ]
    results = await mp_kernel.record_receipts(receipts)
    assert [r.receipt.dedup_key for r in results] == ["r0", "r1", "r2"]
    history = (await get_message(mp_client, "acme", "m1"))["history"]
    assert [e["event_type"] for e in history] == [
        "sent",
        "pec_acceptance",
        "pec_delivery",
        "pec_error",
    ]


async def test_client_id_counts_only_for_exactly_one_sent_message_to_the_recipient(
    mp_kernel, mp_client, add_tenant
):
    await add_tenant("acme")
    await add_tenant("globex")
    await _sent(
        mp_kernel,
        mp_client,
        message("acme", "inv-1", to="bob@example.com"),
        message("globex", "inv-1", to="carol@example.com"),
        message("acme", "inv-2", to="bob@example.com"),
        message("globex", "inv-2", to="Bob <BOB@example.com>"),
    )
    unique, ambiguous, nobody, scoped = await mp_kernel.record_receipts(
        [
            bounce("a", client_message_id="inv-1", recipient="carol@example.com"),
            bounce("b", client_message_id="inv-2", recipient="bob@example.com"),
            bounce("c", client_message_id="inv-1", recipient="dave@example.com"),
            bounce("d", client_message_id="inv-2", recipient="bob@example.com", tenant_id="acme"),
        ]
    )
    assert (unique.outcome, unique.tenant_id) == (ReceiptOutcome.RECORDED, "globex")
    assert ambiguous.outcome is ReceiptOutcome.AMBIGUOUS
    assert nobody.outcome is ReceiptOutcome.UNMATCHED
    assert (scoped.outcome, scoped.tenant_id, scoped.message_id) == (
        ReceiptOutcome.RECORDED,
        "acme",
        "inv-2",
    )
    # Without a recipient a client id that two tenants use is ambiguous.
    (both,) = await mp_kernel.record_receipts([bounce("e", client_message_id="inv-1")])
    assert both.outcome is ReceiptOutcome.AMBIGUOUS


async def test_message_id_first_then_client_id_and_restrictions(mp_kernel, mp_client, add_tenant):
    await add_tenant("acme")
    await add_tenant("globex")
    await _sent(
        mp_kernel,
        mp_client,
        message("acme", "m1", message_id="<order-1@shop.example>"),
        message("globex", "m1", account_id="other"),
    )
    results = await mp_kernel.record_receipts(
        [
            # The Message-ID wins over a client id naming another message.
            bounce("a", message_id_header="order-1@shop.example", client_message_id="zzz"),
            # An unknown Message-ID falls back to the client id (one tenant given).
            bounce(
                "b",
                message_id_header="<nope@x.example>",
                client_message_id="m1",
                tenant_id="globex",
            ),
            # Restricted to a tenant or an account that did not send it: no match.
            bounce("c", message_id_header="<order-1@shop.example>", tenant_id="globex"),
            bounce("d", client_message_id="m1", tenant_id="globex", account_id="main"),
            bounce("e", client_message_id="m1", tenant_id="globex", account_id="other"),
            bounce("f"),
        ]
    )
    outcomes = [(r.outcome, r.tenant_id) for r in results]
    assert outcomes == [
        (ReceiptOutcome.RECORDED, "acme"),
        (ReceiptOutcome.RECORDED, "globex"),
        (ReceiptOutcome.UNMATCHED, None),
        (ReceiptOutcome.UNMATCHED, None),
        (ReceiptOutcome.RECORDED, "globex"),
        (ReceiptOutcome.UNMATCHED, None),
    ]


async def test_receipt_for_a_deleted_message_is_unmatched(mp_kernel, mp_client, add_tenant):
    await add_tenant("acme")
    await _sent(mp_kernel, mp_client, message("acme", "m1"))
    (sent,) = await mp_kernel.find_messages(client_message_id="m1", tenant_id="acme")
    deleted = await mp_client.post("/messages/delete", message_pk=sent.pk)
    assert deleted.status == 200 and deleted.json is True
    (result,) = await mp_kernel.record_receipts([bounce("x", message_pk=sent.pk)])
    assert result.outcome is ReceiptOutcome.UNMATCHED


async def test_find_messages_and_message_id_header(mp_kernel, mp_client, add_tenant):
    await add_tenant("acme")
    await add_tenant("globex")
    await enqueue(
        mp_client,
        message("acme", "same"),
        message("globex", "same", to=["x@example.com", "Y <y@example.com>"], cc="z@example.com"),
        message("acme", "own", message_id="  <Own.Id@client.example> "),
    )
    pending = await mp_kernel.find_messages(client_message_id="same")
    assert [(m.tenant_id, m.status, m.sent_ts) for m in pending] == [
        ("acme", "pending", None),
        ("globex", "pending", None),
    ]
    # Two tenants' equal client ids never share a Message-ID.
    assert pending[0].message_id_header != pending[1].message_id_header
    assert pending[1].recipients == ("x@example.com", "y@example.com", "z@example.com")
    (own,) = await mp_kernel.find_messages(message_id_header="Own.Id@client.example")
    assert (own.id, own.message_id_header) == ("own", "<Own.Id@client.example>")
    (to_z,) = await mp_kernel.find_messages(client_message_id="same", recipient="Z@example.com")
    assert to_z.tenant_id == "globex"
    assert await mp_kernel.find_messages(client_message_id="same", tenant_id="nobody") == []
    assert len(await mp_kernel.find_messages(client_message_id="same", limit=1)) == 1
    with pytest.raises(ValueError, match="message_id_header or client_message_id"):
        await mp_kernel.find_messages(tenant_id="acme")

    # The kernel's answer for a queued message is its stored Message-ID.
    row = await mp_kernel.repos.messages.get("globex", "same")
    assert row is not None
    from mailproxy_core.dispatch.dispatcher import message_from_row

    queued = message_from_row({**row, "account_pk": None, "smtp_ts": None})
    assert mp_kernel.message_id_header(queued) == pending[1].message_id_header


async def test_a_message_id_two_tenants_gave_is_told_apart_by_recipient(
    mp_kernel, mp_client, add_tenant
):
    await add_tenant("acme")
    await add_tenant("globex")
    shared = "<newsletter-7@client.example>"
    await _sent(
        mp_kernel,
        mp_client,
        message("acme", "n7", message_id=shared, to="ann@example.com"),
        message("globex", "n7", message_id=shared, to="bob@example.com"),
    )
    by_recipient, unknown_recipient, no_recipient = await mp_kernel.record_receipts(
        [
            bounce("a", message_id_header=shared, recipient="BOB@example.com"),
            bounce("b", message_id_header=shared, recipient="zed@example.com"),
            bounce("c", message_id_header=shared),
        ]
    )
    assert (by_recipient.outcome, by_recipient.tenant_id) == (ReceiptOutcome.RECORDED, "globex")
    assert unknown_recipient.outcome is ReceiptOutcome.AMBIGUOUS
    assert no_recipient.outcome is ReceiptOutcome.AMBIGUOUS


async def test_receipts_without_a_key_are_refused_before_anything_is_recorded(
    mp_kernel, mp_client, add_tenant
):
    await add_tenant("acme")
    await _sent(mp_kernel, mp_client, message("acme", "m1"))
    (sent,) = await mp_kernel.find_messages(client_message_id="m1")
    good = bounce("ok", message_pk=sent.pk)
    with pytest.raises(ValueError, match="receipt 1 needs an event_type and a dedup_key"):
        await mp_kernel.record_receipts([good, bounce(" ", message_pk=sent.pk)])
    with pytest.raises(TypeError, match="receipt 0 is a dict"):
        await mp_kernel.record_receipts([{"event_type": "bounce"}])  # type: ignore[list-item]
    assert await mp_kernel.record_receipts([]) == []
    history = (await get_message(mp_client, "acme", "m1"))["history"]
    assert [e["event_type"] for e in history] == ["sent"]
