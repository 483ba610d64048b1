"""Delivery rate with attachments read from an S3 mount (moto's server), cold and warm cache.

The counterpart of ``attachments.py`` for the enterprise cloud storage plugin: one
``mail-proxy serve`` process on SQLite (dispatcher running, default attachment settings) sends
to an SMTP sink on loopback. moto's S3 server runs in this process on 127.0.0.1 and holds
``--messages`` + 1 distinct objects of ``--size`` bytes; the tenant mounts the bucket with
``storages/add`` (protocol ``s3``, ``endpoint_url`` = the moto server). Phases, each
``--messages`` messages enqueued while the tenant is suspended, then timed from activation
until every one is ``sent``:

1. **plain** — no attachment (the reference rate of this machine and setup);
2. **cold** — message *i* attaches ``S3:f/<i>.pdf`` (with its ``content_md5``): every read misses;
3. **warm** — the same objects again under new message ids: every read is a cache hit;
4. **shared** — every message attaches the same new object.

Needs ``mailproxy-ee-cloud-storage[s3]`` and ``moto[server]`` (its test extra); without them it
says so and exits 0.

Usage::

    .venv/bin/python benchmarks/attachments_s3.py [--messages 1000] [--size 204800]
                                                  [--sink auto] [--phases plain,cold,warm,shared]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput_support import (
    TENANT,
    BenchFiles,
    Service,
    attachment_arguments,
    attachment_phases,
    run_attachment_phases,
    start_sink,
)

ANSI_STYLE = re.compile(r"\x1b\[[0-9;]*m")
BUCKET = "bench-attachments"
KEY_ID, SECRET = "AKIDBENCHMARK", "benchmark-secret"


class Objects(BenchFiles):
    """The objects of the benchmark in moto's S3 server; counts GET requests."""

    def __init__(self, size: int) -> None:
        from moto.server import ThreadedMotoServer

        super().__init__(size)
        self.gets = 0
        owner = self

        class CountGets(logging.Filter):
            """Counts moto's GET requests and keeps its access log quiet."""

            def filter(self, record: logging.LogRecord) -> bool:
                # werkzeug colours the request of a non-200 answer (206 for a ranged GET)
                if '"GET /' in ANSI_STYLE.sub("", record.getMessage()):
                    owner.gets += 1
                return False

        logging.getLogger("werkzeug").addFilter(CountGets())
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=KEY_ID,
            aws_secret_access_key=SECRET,
            region_name="us-east-1",
        )

    def upload(self, count: int) -> None:
        client = self.client()
        client.create_bucket(Bucket=BUCKET)
        for number in range(count):
            client.put_object(Bucket=BUCKET, Key=f"f/{number}.pdf", Body=self.content(number))

    def close(self) -> None:
        self.server.stop()


async def main(args: argparse.Namespace) -> None:
    count = args.messages
    objects = Objects(args.size)
    print(f"uploading {count + 1} objects of {args.size:,} bytes to moto ...")
    await asyncio.to_thread(objects.upload, count + 1)

    def spec(number: int) -> dict[str, Any]:
        return {
            "filename": f"invoice-{number}.pdf",
            "storage_path": f"S3:f/{number}.pdf",
            "content_md5": objects.md5(number),
        }

    phases = attachment_phases(count, spec)
    print(f"{count} messages per phase, attachments of {args.size:,} bytes from S3 (moto)")
    print(f"{'phase':8} {'msgs/s':>8} {'S3 GETs':>8} {'peak RSS MB':>12}")
    async with start_sink(args.sink, install=not args.no_install) as sink:
        async with Service.sqlite(sink) as service:
            mounted = await service.post(
                "/storages/add",
                {
                    "tenant_id": TENANT,
                    "name": "S3",
                    "protocol": "s3",
                    "config": {
                        "bucket": BUCKET,
                        "endpoint_url": objects.endpoint,
                        "region": "us-east-1",
                        "access_key_id": KEY_ID,
                        "secret_access_key": SECRET,
                    },
                },
            )
            assert mounted is not None
            await run_attachment_phases(
                service, phases, args.phases, lambda: objects.gets, within=900, width=8
            )
    objects.close()


if __name__ == "__main__":
    options = attachment_arguments(__doc__.split("\n\n")[0]).parse_args()
    missing = [
        name
        for name in ("moto", "s3fs", "mailproxy_ee_cloud_storage")
        if importlib.util.find_spec(name) is None
    ]
    if missing:
        print(
            f"skipped: needs {', '.join(missing)} "
            "(pip install -e 'mailproxy_ee/cloud-storage[test]')"
        )
        sys.exit(0)
    asyncio.run(main(options))
