"""The report body of docs/reports.md: one entry per event, in event order, and its signature.

Entry shapes by event type (``T`` is the event's unix time)::

    sent       {"id", "sent_ts": T}
    error      {"id", "error_ts": T, "error": <reason>}
    deferred   {"id", "deferred_ts": T, "deferred_reason": <"rate_limit" or the failure text>}
    bounce     {"id", "bounce_ts": T, "bounce_type", "bounce_code", "bounce_reason"}
    pec_*      {"id", "pec_event": <event type>, "pec_ts": T, "pec_details"}

Every entry also carries ``event_id`` (the event's uuid, stable across re-posts) and
``tenant_id``. An event type not listed (a plugin's own) is sent as ``{"id", "event_type",
"event_ts", "description"}`` so that nothing is left out.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from typing import Any

from mailproxy_core import DeliveryEvent, EventType, MetaKey

SIGNATURE_HEADER = "X-Mailproxy-Signature"
"""The header carrying ``t=<unix ts>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">``."""


_PEC_EVENTS = frozenset(
    {EventType.PEC_ACCEPTANCE, EventType.PEC_DELIVERY, EventType.PEC_ERROR, EventType.PEC_TIMEOUT}
)


def report_entry(event: DeliveryEvent) -> dict[str, Any]:
    """The delivery-report entry of one event (shapes in the module docstring)."""
    kind = event.event_type
    entry: dict[str, Any] = {"id": event.message_id}
    if kind == EventType.SENT:
        entry["sent_ts"] = event.event_ts
    elif kind == EventType.ERROR:
        entry["error_ts"] = event.event_ts
        entry["error"] = event.description
    elif kind == EventType.DEFERRED:
        entry["deferred_ts"] = event.event_ts
        entry["deferred_reason"] = event.description
    elif kind == EventType.BOUNCE:
        entry["bounce_ts"] = event.event_ts
        entry["bounce_type"] = event.metadata.get(MetaKey.BOUNCE_TYPE)
        entry["bounce_code"] = event.metadata.get(MetaKey.BOUNCE_CODE)
        entry["bounce_reason"] = event.description
    elif kind in _PEC_EVENTS:
        entry["pec_event"] = str(kind)
        entry["pec_ts"] = event.event_ts
        entry["pec_details"] = event.description
    else:
        entry["event_type"] = kind
        entry["event_ts"] = event.event_ts
        entry["description"] = event.description
    entry["event_id"] = event.event_id
    entry["tenant_id"] = event.tenant_id
    return entry


def report_body(events: Sequence[DeliveryEvent]) -> bytes:
    """The exact bytes POSTed: ``{"delivery_report": [entry, ...]}`` as compact UTF-8 JSON."""
    document = {"delivery_report": [report_entry(event) for event in events]}
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def signature(secret: str, body: bytes, ts: int) -> str:
    """The ``X-Mailproxy-Signature`` value for ``body`` sent at ``ts``."""
    digest = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={ts},v1={digest}"
