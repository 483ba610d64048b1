"""Bounce, suppression and PEC receipt counters, labelled by tenant id.

- ``gmp_bounces_total{tenant_id,bounce_type}``: one per recorded ``bounce`` receipt; the type is
  the receipt's ``metadata.bounce_type`` (``hard``, ``soft``, ``complaint``), ``unknown`` when it
  is missing or another value (the label set stays bounded whatever a handler writes).
- ``gmp_suppressed_total{tenant_id}``: one per recipient a send guard dropped, whether the
  message was still sent to the others (``sent`` event, ``metadata.suppressed``) or ended in
  ``error`` because none was left.
- ``gmp_pec_receipts_total{tenant_id,event}``: one per recorded ``pec_*`` receipt; ``event`` is
  its event type (``pec_acceptance``, ``pec_delivery``, ``pec_error``, ``pec_timeout``).

Receipts are counted from ``mailproxy_receipt_received``, which the kernel emits once per
receipt it recorded: a duplicate (same message, same dedup key) is never counted twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from mailproxy_core import EventType, MetaKey, Receipt, ReceiptOutcome, ReceiptResult

from .outcomes import CounterInfo

BOUNCE_TYPES = frozenset({"hard", "soft", "complaint"})
"""Values of ``bounce_type`` kept as they are; anything else is counted as ``unknown``."""

UNKNOWN_BOUNCE_TYPE = "unknown"

PEC_PREFIX = "pec_"
"""Event types of PEC receipts start with it (``EventType.PEC_ACCEPTANCE`` ...)."""

BOUNCES = CounterInfo(
    "gmp_bounces",
    "Recorded bounce receipts by type: hard, soft, complaint (unknown when the receipt has none).",
)
SUPPRESSED = CounterInfo(
    "gmp_suppressed",
    "Recipients a send guard dropped (suppressed): left out of a sent message, or every "
    "recipient of a message that ended in error for that.",
)
PEC_RECEIPTS = CounterInfo(
    "gmp_pec_receipts", "Recorded PEC receipts by event type (pec_acceptance, pec_delivery ...)."
)


def bounce_type_of(receipt: Receipt) -> str:
    """The ``bounce_type`` label of a bounce receipt."""
    value = receipt.metadata.get(MetaKey.BOUNCE_TYPE)
    return value if isinstance(value, str) and value in BOUNCE_TYPES else UNKNOWN_BOUNCE_TYPE


class ReceiptCounters:
    """Counts of bounces, suppressed recipients and PEC receipts per tenant."""

    def __init__(self) -> None:
        self.bounces: Counter[tuple[str, str]] = Counter()
        self.suppressed: Counter[str] = Counter()
        self.pec: Counter[tuple[str, str]] = Counter()

    def add_receipt(self, receipt: Receipt, result: ReceiptResult) -> None:
        """Count one recorded receipt; other outcomes and other event types are ignored."""
        if result.outcome is not ReceiptOutcome.RECORDED:
            return
        tenant_id = result.tenant_id or receipt.tenant_id or ""
        event_type = str(receipt.event_type)
        if event_type == EventType.BOUNCE:
            self.bounces[(tenant_id, bounce_type_of(receipt))] += 1
        elif event_type.startswith(PEC_PREFIX):
            self.pec[(tenant_id, event_type)] += 1

    def add_suppressed(self, tenant_id: str, recipients: tuple[str, ...]) -> None:
        """Count the recipients a send guard dropped from one message of ``tenant_id``."""
        if recipients:
            self.suppressed[tenant_id] += len(recipients)

    def bounce_series(self) -> Iterator[tuple[tuple[str, str], int]]:
        """``((tenant_id, bounce_type), count)``, sorted."""
        yield from sorted(self.bounces.items())

    def suppressed_series(self) -> Iterator[tuple[tuple[str], int]]:
        """``((tenant_id,), count)``, sorted."""
        for tenant_id, count in sorted(self.suppressed.items()):
            yield (tenant_id,), count

    def pec_series(self) -> Iterator[tuple[tuple[str, str], int]]:
        """``((tenant_id, event), count)``, sorted."""
        yield from sorted(self.pec.items())
