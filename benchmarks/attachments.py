"""Delivery rate with attachments fetched over HTTP (``http_url``), cold and with a warm cache.

One ``mail-proxy serve`` process on SQLite (dispatcher running, default plugins, default
attachment settings: 10 concurrent fetches, 64 MiB memory cache, disk cache in a private
temporary directory) sends to an SMTP sink on loopback (``smtp-sink`` when installed, else the
aiosmtpd sink process of ``throughput_support.py``). A threaded stdlib HTTP server in this
process serves ``--files`` distinct files of ``--size`` bytes. Phases, each ``--messages``
messages enqueued while the tenant is suspended, then timed from activation until every one is
``sent``:

1. **plain** — no attachment (the reference rate of this machine and setup);
2. **cold** — message *i* attaches file *i* (with its ``content_md5``): every fetch misses;
3. **warm** — the same files again under new message ids: every fetch is a cache hit;
4. **shared** — every message attaches the same new file: one fetch, the rest wait for it or hit.

Usage::

    .venv/bin/python benchmarks/attachments.py [--messages 1000] [--size 204800] [--sink auto]
                                               [--phases plain,cold,warm,shared] [--profile DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput_support import (
    BODY,
    BULK_ACCOUNT,
    TENANT,
    Service,
    count_sent,
    peak_rss_kb,
    start_sink,
)


class FileServer:
    """Serves ``/f/<n>``: ``size`` bytes, distinct per ``n``; counts requests."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.requests = 0
        self._block = hashlib.sha256(b"mail-proxy").digest() * (size // 32 + 1)
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                owner.requests += 1
                body = owner.content(int(self.path.rsplit("/", 1)[-1]))
                self.send_response(200)
                self.send_header("Content-Type", "application/pdf")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def content(self, number: int) -> bytes:
        prefix = f"%PDF-1.4 file {number}\n".encode()
        return prefix + self._block[: self.size - len(prefix)]

    def url(self, number: int) -> str:
        return f"http://127.0.0.1:{self.port}/f/{number}"

    def md5(self, number: int) -> str:
        return hashlib.md5(self.content(number)).hexdigest()


def message(phase: str, number: int, attachment: dict[str, Any] | None) -> dict[str, Any]:
    values: dict[str, Any] = {
        "id": f"{phase}-{number}",
        "tenant_id": TENANT,
        "account_id": BULK_ACCOUNT,
        "from": "shop@example.com",
        "to": f"customer{number}@example.org",
        "subject": f"Invoice {number}",
        "body": BODY,
    }
    if attachment is not None:
        values["attachments"] = [attachment]
    return values


async def run_phase(
    service: Service, phase: str, messages: list[dict[str, Any]], already: int
) -> float:
    """Enqueue while suspended, activate, time until all are sent; msgs/s."""
    await service.suspend()
    for start in range(0, len(messages), 500):
        await service.enqueue(messages[start : start + 500])
    started = time.perf_counter()
    await service.activate()
    target = already + len(messages)
    deadline = time.monotonic() + 600
    while await count_sent(service) < target:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{phase}: not every message was sent in time")
        await asyncio.sleep(0.02)
    return len(messages) / (time.perf_counter() - started)


async def main(args: argparse.Namespace) -> None:
    # the file server listens on loopback, which fetches refuse unless an operator allows it
    os.environ["MAILPROXY_ATTACHMENTS__ALLOWED_NETWORKS"] = "127.0.0.1/32"
    files = FileServer(args.size)
    count = args.messages

    def spec(number: int) -> dict[str, Any]:
        return {
            "filename": f"invoice-{number}.pdf",
            "storage_path": files.url(number),
            "content_md5": files.md5(number),
        }

    phases = [
        ("plain", [message("plain", n, None) for n in range(count)]),
        ("cold", [message("cold", n, spec(n)) for n in range(count)]),
        ("warm", [message("warm", n, spec(n)) for n in range(count)]),
        ("shared", [message("shared", n, spec(count)) for n in range(count)]),
    ]
    print(f"{count} messages per phase, attachments of {args.size:,} bytes over HTTP")
    print(f"{'phase':8} {'msgs/s':>8} {'HTTP requests':>14} {'peak RSS MB':>12}")
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    async with start_sink(args.sink, install=not args.no_install) as sink:
        async with Service.sqlite(sink, profile=args.profile) as service:
            sent = 0
            for phase, batch in phases:
                if phase not in args.phases.split(","):
                    continue
                before = files.requests
                rate = await run_phase(service, phase, batch, sent)
                sent += len(batch)
                rss = peak_rss_kb(service.pids[0]) / 1024
                print(f"{phase:8} {rate:8.0f} {files.requests - before:14d} {rss:12.0f}")
    files.httpd.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--size", type=int, default=200 * 1024)
    parser.add_argument("--sink", choices=("auto", "smtp-sink", "aiosmtpd"), default="auto")
    parser.add_argument("--no-install", action="store_true", help="never apt-get postfix")
    parser.add_argument("--phases", default="plain,cold,warm,shared")
    parser.add_argument("--profile", type=Path, help="cProfile the serve process into DIR")
    asyncio.run(main(parser.parse_args()))
