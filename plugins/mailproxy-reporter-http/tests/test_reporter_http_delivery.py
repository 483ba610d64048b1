"""``HttpReporter.report`` against a real client application on loopback.

Entry shapes for every event type (bounce and PEC events included), the exact bytes signed, and
how each kind of answer or failure is turned into a ``ReportAck``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time

from mailproxy_core import DeliveryEvent, Tenant
from mailproxy_reporter_http import HttpReporter, report_entry

T = 1_780_000_000


def event(
    kind: str, n: int = 1, description: str | None = None, **metadata: object
) -> DeliveryEvent:
    return DeliveryEvent(
        event_id=f"uuid-{kind}-{n}",
        tenant_id="acme",
        message_id=f"m{n}",
        event_type=kind,
        event_ts=T + n,
        description=description,
        metadata=metadata,
    )


EVENTS = [
    event("sent", 1),
    event("deferred", 2, "rate_limit"),
    event("error", 3, "550 5.1.1 User unknown"),
    event("bounce", 4, "Mailbox does not exist", bounce_type="hard", bounce_code="5.1.1"),
    event("pec_acceptance", 5, "Ricevuta di accettazione"),
    event("pec_delivery", 6),
    event("opened", 7, "tracking pixel"),
]

EXPECTED = [
    {"id": "m1", "sent_ts": T + 1},
    {"id": "m2", "deferred_ts": T + 2, "deferred_reason": "rate_limit"},
    {"id": "m3", "error_ts": T + 3, "error": "550 5.1.1 User unknown"},
    {
        "id": "m4",
        "bounce_ts": T + 4,
        "bounce_type": "hard",
        "bounce_code": "5.1.1",
        "bounce_reason": "Mailbox does not exist",
    },
    {
        "id": "m5",
        "pec_event": "pec_acceptance",
        "pec_ts": T + 5,
        "pec_details": "Ricevuta di accettazione",
    },
    {"id": "m6", "pec_event": "pec_delivery", "pec_ts": T + 6, "pec_details": None},
    {"id": "m7", "event_type": "opened", "event_ts": T + 7, "description": "tracking pixel"},
]


def tenant(app_url: str, **fields: object) -> Tenant:
    return Tenant(id="acme", client_base_url=app_url, **fields)  # type: ignore[arg-type]


def test_entry_shapes_per_event_type() -> None:
    for item, expected in zip(EVENTS, EXPECTED, strict=True):
        assert report_entry(item) == {
            **expected,
            "event_id": item.event_id,
            "tenant_id": "acme",
        }


async def test_a_report_is_one_post_with_every_entry_in_order(
    reporter: HttpReporter, client_app
) -> None:
    app = client_app()
    ack = await reporter.report(tenant(app.url, client_auth={"method": "none"}), EVENTS)
    assert ack.ok and ack.next_sync_after is None
    (request,) = app.received()
    assert request.path == "/mail-proxy/sync"
    assert request.headers["content-type"] == "application/json"
    assert [
        {k: v for k, v in entry.items() if k not in ("event_id", "tenant_id")}
        for entry in request.entries
    ] == EXPECTED
    assert [entry["event_id"] for entry in request.entries] == [e.event_id for e in EVENTS]
    assert json.loads(request.body) == request.document


async def test_an_idle_poll_posts_an_empty_report(reporter: HttpReporter, client_app) -> None:
    app = client_app()
    assert (await reporter.report(tenant(app.url), [])).ok
    assert app.received()[0].document == {"delivery_report": []}


async def test_the_signature_covers_the_exact_bytes_sent(reporter: HttpReporter, client_app):
    app = client_app()
    secret = "whsec-äöü"  # non-ASCII secrets are UTF-8 encoded
    before = int(time.time())
    await reporter.report(tenant(app.url, report_signing_secret=secret), EVENTS[:2])
    request = app.received()[0]
    ts, v1 = (part.split("=", 1)[1] for part in request.headers["x-mailproxy-signature"].split(","))
    assert before <= int(ts) <= int(time.time())
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + request.body, hashlib.sha256)
    assert hmac.compare_digest(v1, mac.hexdigest())
    tampered = request.body.replace(b"m1", b"m9")
    forged = hmac.new(secret.encode(), f"{ts}.".encode() + tampered, hashlib.sha256)
    assert v1 != forged.hexdigest()


async def test_answers_and_failures(reporter: HttpReporter, client_app) -> None:
    app = client_app()
    target = tenant(app.url)

    app.status, app.answer = 202, {"ok": True, "queued": 3, "next_sync_after": T}
    assert await reporter.report(target, EVENTS[:1]) == _ack(True, float(T))
    for answer in ({"next_sync_after": "soon"}, {"next_sync_after": True}, ["not", "an object"]):
        app.answer = answer  # type: ignore[assignment]
        assert await reporter.report(target, []) == _ack(True)

    app.status, app.answer = 500, {"detail": "Bearer tok-in-echo"}
    refused = await reporter.report(target, EVENTS[:1])
    assert refused == _ack(False, detail="HTTP 500 Internal Server Error")
    app.status = 301
    assert not (await reporter.report(target, [])).ok  # redirects are not followed

    # No client application: nothing to report to, so the events count as reported.
    posted = len(app.received())
    nowhere = await reporter.report(Tenant(id="acme"), EVENTS[:1])
    assert nowhere == _ack(True, detail="no client_base_url: nothing to report to")
    assert len(app.received()) == posted


async def test_unreachable_and_hanging_clients_fail_within_the_timeout(
    reporter: HttpReporter, client_app
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    gone = await reporter.report(
        tenant(f"http://user:pw-secret@127.0.0.1:{closed_port}"), EVENTS[:1]
    )
    assert not gone.ok and gone.detail.startswith("ConnectError: ")
    assert "pw-secret" not in gone.detail and str(closed_port) not in gone.detail

    app = client_app(hang=True)
    started = time.monotonic()
    hung = await reporter.report(tenant(app.url), EVENTS[:1])
    assert not hung.ok and hung.detail == "no answer in time (ReadTimeout)"
    assert time.monotonic() - started < 3.0  # the plugin's timeout is 1 s in these tests


def _ack(ok: bool, next_sync_after: float | None = None, detail: str = ""):
    from mailproxy_core import ReportAck

    return ReportAck(ok=ok, next_sync_after=next_sync_after, detail=detail)
