"""Bounce mailbox processing rate: notices read from Dovecot and recorded as events, per second.

A private Dovecot on loopback (``mailproxy_ee_imap.testing``; ``make test-deps`` installs it)
holds ``--notices`` bounce notices (the project's samples, round-robin, each about a different
sent message; written as Maildir files). A mail-proxy app in this process (SQLite, or the
PostgreSQL URL of ``--pg``) has that many messages sent through the ``null`` transport, with
known Message-IDs. The timed part starts when the bounce mailbox is configured (which asks the
kernel's receipt loop for a poll) and ends when every notice is an event: IMAP search and fetch
in batches (``--batch``), classification, ``record_receipts`` (correlation by Message-ID,
de-duplication, the events), suppression of hard bounces, the saved position and the ``\\Seen``
flags. It prints notices/s, and first the rate of the IMAP part alone (search and fetch of the
whole folder, nothing flagged).

Usage::

    .venv/bin/python benchmarks/bounce_mailbox.py [--notices 10000] [--batch 50] [--pg URL]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "mailproxy_ee" / "bounce" / "tests" / "data" / "bounces"
BOUNCING = [
    "postfix_550_511_user_unknown.eml",
    "exim_452_422_mailbox_full.eml",
    "o365_550_5110_recipient_not_found.eml",
    "exchange_550_571_not_authorized.eml",
    "gmail_550_511_with_original.eml",
    "postfix_delayed_447.eml",
    "heuristic_mail_delivery_failed.eml",
    "arf_feedback_abuse_complaint.eml",
]


async def run(notices: int, batch: int, db: str) -> None:
    from mailproxy_core import Settings
    from mailproxy_core.app import create_app, kernel_of
    from mailproxy_core.testing.client import ApiClient
    from mailproxy_core.testing.dispatch import dispatch_now
    from mailproxy_core.testing.plugin import ADMIN_TOKEN, admin_token_plugins
    from mailproxy_ee_imap import ImapMailbox
    from mailproxy_ee_imap.testing import DovecotServer

    templates = [(SAMPLES / name).read_bytes() for name in BOUNCING]
    with DovecotServer({"bounces": "bench-secret"}) as server:
        folder = "Bounces"
        server.create_folder(folder, "bounces")
        settings = Settings.from_values(
            db=db,
            api_token=ADMIN_TOKEN,
            encryption_key=base64.b64encode(bytes(range(32))).decode(),
            test_mode=True,
            plugin_sections={"ee_bounce": {"idle": False, "fetch_batch": batch}},
        )
        app = create_app(settings, extra_plugins=admin_token_plugins())
        async with app.test_app():
            client = ApiClient(app.test_client(), token=ADMIN_TOKEN)
            mp = kernel_of(app)
            await client.post("/tenants/add", json={"id": "bench"})
            await client.post(
                "/accounts/add",
                json={"tenant_id": "bench", "id": "null", "host": "-", "port": 25,
                      "transport": "null"},
            )  # fmt: skip
            started = time.perf_counter()
            for first in range(0, notices, 1000):
                messages = [
                    {
                        "id": f"m{i}",
                        "tenant_id": "bench",
                        "account_id": "null",
                        "from": "orders@acme-shop.example",
                        "to": [f"user{i}@example.test"],
                        "subject": "s",
                        "body": "b",
                        "message_id": f"<bench-{i}@acme-shop.example>",
                    }
                    for i in range(first, min(first + 1000, notices))
                ]
                response = await client.post("/messages/add_batch", json={"messages": messages})
                assert response.json["queued"] == len(messages), response.json
            await dispatch_now(mp, within=600)
            print(f"sent {notices} messages in {time.perf_counter() - started:.1f} s (setup)")
            raws = (
                # each notice its own Message-ID (before the placeholders are filled, so that
                # only the notice's header matches), then the message it is about
                templates[i % len(templates)]
                .replace(b"Message-Id: <", f"Message-Id: <n{i}.".encode())
                .replace(b"Message-ID: <", f"Message-ID: <n{i}.".encode())
                .replace(b"{{RCPT}}", f"user{i}@example.test".encode())
                .replace(b"{{MESSAGE_ID}}", f"<bench-{i}@acme-shop.example>".encode())
                .replace(b"{{MAIL_ID}}", f"m{i}".encode())
                for i in range(notices)
            )
            server.write_maildir(raws, folder, "bounces")
            expected = notices  # every template yields one event
            # the IMAP part alone: search and fetch every notice (BODY.PEEK, nothing flagged)
            started = time.perf_counter()
            async with ImapMailbox(server.settings("bounces", folder)) as box:
                await box.select()
                fetched = 0
                async for _ in box.fetch_new(0, batch_size=batch):
                    fetched += 1
            imap_s = time.perf_counter() - started
            print(f"IMAP alone: fetched {fetched} notices in {imap_s:.1f} s: "
                  f"{fetched / imap_s:,.0f} notices/s")  # fmt: skip
            started = time.perf_counter()
            await client.post(
                "/instance/set_bounce_config",
                json={"enabled": True, "imap_host": server.host, "imap_port": server.port,
                      "imap_ssl": False, "imap_user": "bounces", "imap_password": "bench-secret",
                      "imap_folder": folder},
            )  # fmt: skip
            # the configuration asked the receipt loop for a poll: it reads the whole mailbox
            count = "SELECT count(*) FROM message_events WHERE event_type = 'bounce'"
            events = 0
            while events < expected:
                await asyncio.sleep(0.2)
                events = await mp.data.fetch_val(count)
                if time.perf_counter() - started > 1800:
                    break
            elapsed = time.perf_counter() - started
            print(
                f"processed {notices} notices in {elapsed:.1f} s: {notices / elapsed:,.0f} "
                f"notices/s (batch {batch}); {events} bounce events recorded"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notices", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--pg", default=None, help="a postgresql:// URL (a fresh database)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = args.pg or str(Path(tmp) / "bench.db")
        asyncio.run(run(args.notices, args.batch, db))
    return 0


if __name__ == "__main__":
    sys.exit(main())
