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
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput_support import (
    BenchFiles,
    Service,
    attachment_arguments,
    attachment_phases,
    run_attachment_phases,
    start_sink,
)


class FileServer(BenchFiles):
    """Serves ``/f/<n>``: ``size`` bytes, distinct per ``n``; counts requests."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.requests = 0
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

    def url(self, number: int) -> str:
        return f"http://127.0.0.1:{self.port}/f/{number}"


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

    phases = attachment_phases(count, spec)
    print(f"{count} messages per phase, attachments of {args.size:,} bytes over HTTP")
    print(f"{'phase':8} {'msgs/s':>8} {'HTTP requests':>14} {'peak RSS MB':>12}")
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    async with start_sink(args.sink, install=not args.no_install) as sink:
        async with Service.sqlite(sink, profile=args.profile) as service:
            await run_attachment_phases(
                service, phases, args.phases, lambda: files.requests, within=600, width=14
            )
    files.httpd.shutdown()


if __name__ == "__main__":
    parser = attachment_arguments(__doc__.split("\n\n")[0])
    parser.add_argument("--profile", type=Path, help="cProfile the serve process into DIR")
    asyncio.run(main(parser.parse_args()))
