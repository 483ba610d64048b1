"""Bounce, PEC receipt and suppression counters after real sends and recorded receipts.

Messages go REST enqueue → dispatcher → aiosmtpd (scripted); receipts are recorded with
``mp.record_receipts`` for the Message-ID the message was sent with (``mp.find_messages``), as
a receipt handler does; a send guard registered as an in-process plugin drops recipients.
"""

from __future__ import annotations

from typing import Any

import pytest

from mailproxy_core import (
    EventType,
    GuardVerdict,
    MailProxy,
    MetaKey,
    Receipt,
    ReceiptOutcome,
    SendGuardSpec,
    hookimpl,
)
from mailproxy_core.testing.dispatch import dispatch_now

pytestmark = pytest.mark.requires_plugins("smtp", "auth_token")

NEW_COUNTERS = ("gmp_bounces", "gmp_suppressed", "gmp_pec_receipts")


def acme(**labels: str) -> frozenset[tuple[str, str]]:
    return frozenset({("tenant_id", "acme"), *labels.items()})


async def sent_header(mp: MailProxy, mid: str) -> str:
    """The Message-ID header message ``mid`` of ``acme`` was sent with."""
    (sent,) = await mp.find_messages(client_message_id=mid, tenant_id="acme")
    assert sent.status == "sent" and sent.message_id_header, sent
    return sent.message_id_header


def receipt(event_type: str, dedup_key: str, header: str, **metadata: Any) -> Receipt:
    return Receipt(
        event_type=event_type,
        dedup_key=dedup_key,
        description=f"{event_type} {dedup_key}",
        metadata={MetaKey.RECIPIENT: "bob@example.com", **metadata},
        message_id_header=header,
    )


def bounce(dedup_key: str, header: str, bounce_type: str | None) -> Receipt:
    metadata = {} if bounce_type is None else {MetaKey.BOUNCE_TYPE: bounce_type}
    return receipt(EventType.BOUNCE, dedup_key, header, **metadata)


async def test_metrics_new_counters_have_no_series_before_anything_happened(mp_app, scrape):
    response = await mp_app.test_client().get("/metrics")
    text = await response.get_data(as_text=True)
    for name in NEW_COUNTERS:
        assert f"\n# TYPE {name}_total counter\n" in text
        assert f"\n# HELP {name}_total " in text
    samples = await scrape(mp_app)
    assert not [key for key in samples if key[0].startswith(NEW_COUNTERS)]


async def test_metrics_count_recorded_bounces_by_type_once(
    relay, mp_app, mp_kernel, enqueue, make_message, scrape
):
    await enqueue(relay, make_message("m1"), make_message("m2"))
    await dispatch_now(mp_kernel)
    m1, m2 = await sent_header(mp_kernel, "m1"), await sent_header(mp_kernel, "m2")

    results = await mp_kernel.record_receipts(
        [
            bounce("n1", m1, "hard"),
            bounce("n2", m2, "hard"),
            bounce("n3", m2, "soft"),
            bounce("n4", m1, "complaint"),
            bounce("n5", m1, None),  # no bounce_type: unknown
            bounce("n6", m2, "bogus"),  # not one of the three: unknown
            bounce("n7", "<nobody@elsewhere.example>", "hard"),  # matches no message
        ]
    )
    assert [r.outcome for r in results] == [ReceiptOutcome.RECORDED] * 6 + [
        ReceiptOutcome.UNMATCHED
    ]
    # The same receipts again (a mailbox read twice): duplicates, not counted.
    again = await mp_kernel.record_receipts([bounce("n1", m1, "hard"), bounce("n3", m2, "soft")])
    assert [r.outcome for r in again] == [ReceiptOutcome.DUPLICATE] * 2

    samples = await scrape(mp_app)
    bounces = {
        labels: value for (name, labels), value in samples.items() if name == "gmp_bounces_total"
    }
    assert bounces == {
        acme(bounce_type="hard"): 2,
        acme(bounce_type="soft"): 1,
        acme(bounce_type="complaint"): 1,
        acme(bounce_type="unknown"): 2,
    }
    assert not [key for key in samples if key[0] == "gmp_pec_receipts_total"]
    assert (
        samples[
            (
                "gmp_sent_total",
                acme(tenant_name="Acme Corp", account_id="main", account_name="main"),
            )
        ]
        == 2
    )


async def test_metrics_count_recorded_pec_receipts_by_event_once(
    relay, mp_app, mp_kernel, enqueue, make_message, scrape
):
    await enqueue(relay, make_message("p1", to="bob@example.com, carol@example.com"))
    await dispatch_now(mp_kernel)
    header = await sent_header(mp_kernel, "p1")

    results = await mp_kernel.record_receipts(
        [
            receipt(EventType.PEC_ACCEPTANCE, "r1", header),
            receipt(EventType.PEC_DELIVERY, "r2|bob", header),
            receipt(EventType.PEC_DELIVERY, "r2|carol", header, recipient="carol@example.com"),
            receipt(EventType.PEC_ERROR, "r3", header, reason="mailbox full"),
            receipt(EventType.PEC_DELIVERY, "r2|bob", header),  # same key in one batch
        ]
    )
    assert [r.outcome for r in results] == [ReceiptOutcome.RECORDED] * 4 + [
        ReceiptOutcome.DUPLICATE
    ]
    again = await mp_kernel.record_receipts([receipt(EventType.PEC_ACCEPTANCE, "r1", header)])
    assert again[0].outcome is ReceiptOutcome.DUPLICATE

    samples = await scrape(mp_app)
    pec = {
        labels: value
        for (name, labels), value in samples.items()
        if name == "gmp_pec_receipts_total"
    }
    assert pec == {
        acme(event="pec_acceptance"): 1,
        acme(event="pec_delivery"): 2,
        acme(event="pec_error"): 1,
    }
    assert not [key for key in samples if key[0] == "gmp_bounces_total"]


SUPPRESSED_ADDRESSES = ("carol@example.com", "DAVE@example.com")


class Suppression:
    """Drops carol and dave from every message (as a suppression list would)."""

    def __init__(self, mp: MailProxy) -> None:
        self.mp = mp

    async def check(self, message: Any, account: Any) -> GuardVerdict:
        return GuardVerdict(allow=True, drop_recipients=SUPPRESSED_ADDRESSES)


class SuppressionPlugin:
    @hookimpl
    def mailproxy_register_send_guards(self) -> list[SendGuardSpec]:
        return [SendGuardSpec("suppression", Suppression)]


@pytest.fixture
def suppression(register_plugin: Any) -> object:
    return register_plugin(SuppressionPlugin(), name="test_suppression")


async def test_metrics_count_recipients_a_send_guard_dropped(
    suppression, relay, server, mp_app, mp_kernel, enqueue, make_message, scrape
):
    await enqueue(
        relay,
        make_message("partly", to="bob@example.com", cc="Carol <carol@example.com>"),
        make_message("two", to="bob@example.com", bcc=["dave@example.com", "carol@example.com"]),
        make_message("all", to="carol@example.com"),  # nobody left: error
        make_message("none", to="bob@example.com"),
    )
    await dispatch_now(mp_kernel)
    assert [sorted(m.rcpt_tos) for m in server.handler.messages] == [["bob@example.com"]] * 3

    samples = await scrape(mp_app)
    assert samples[("gmp_suppressed_total", acme())] == 4
    reference = acme(tenant_name="Acme Corp", account_id="main", account_name="main")
    assert samples[("gmp_sent_total", reference)] == 3
    assert samples[("gmp_errors_total", reference)] == 1
