"""End-to-end enqueue throughput: ``messages/add_batch`` over HTTP against ``mail-proxy serve``.

For each database asked for, the benchmark starts ``mail-proxy serve`` as a subprocess on a free
port (SQLite: a file in a temporary directory; PostgreSQL: a fresh ``?schema=``, dropped
afterwards), with ``MAILPROXY_TEST_MODE=1`` so no dispatcher runs. It creates one tenant and one
account with the ``null`` transport, sends one warm-up batch, then posts ``--batches`` batches of
``--batch-size`` messages with httpx (``--concurrency`` requests in flight) and reports messages
per second, the latency of one call, and the peak RSS of the server process (``VmHWM`` from
``/proc/<pid>/status``). Every message is distinct (id, recipient) and about 1 KB of JSON.

Usage::

    .venv/bin/python benchmarks/enqueue.py                       # both databases, 20 x 1000
    .venv/bin/python benchmarks/enqueue.py --batches 50 --db sqlite
    .venv/bin/python benchmarks/enqueue.py --profile /tmp/prof   # cProfile the server

The PostgreSQL server comes from ``--pg-url`` (default ``$MAILPROXY_TEST_PG_URL`` or
``postgresql://postgres@127.0.0.1:5432/test``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput_support import free_port, peak_rss_kb

from mailproxy_core.testing.db import drop_schema, postgres_server_url, url_with_schema

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-admin-token"
BODY = (
    "Dear customer,\n\nthank you for your order. Your invoice is attached to your account page "
    "and the goods will ship within two working days. Reply to this message if anything is "
    "missing or wrong; our support team answers within one working day.\n\nKind regards,\n"
    "The Example Shop team\n"
) * 2


@dataclass
class Result:
    """The measurements of one database run."""

    database: str
    messages: int
    seconds: float
    latencies: list[float]
    peak_rss_kb: int

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    def row(self) -> list[str]:
        ordered = sorted(self.latencies)
        p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
        return [
            self.database,
            f"{self.messages:,}",
            f"{self.seconds:.2f}",
            f"{self.rate:,.0f}",
            f"{statistics.median(ordered) * 1000:.0f}",
            f"{p95 * 1000:.0f}",
            f"{self.peak_rss_kb / 1024:.0f}",
        ]


@asynccontextmanager
async def running_server(
    db: str, profile: Path | None, label: str
) -> AsyncIterator[tuple[str, int]]:
    """``mail-proxy serve`` on a free port; yields ``(base url, pid)``; SIGTERM on exit."""
    port = free_port()
    env = {
        **os.environ,
        "MAILPROXY_DB": db,
        "MAILPROXY_API_TOKEN": TOKEN,
        "MAILPROXY_TEST_MODE": "1",
        "MAILPROXY_HOST": "127.0.0.1",
        "MAILPROXY_PORT": str(port),
        "MAILPROXY_LOG_LEVEL": "WARNING",
        "MAILPROXY_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode(),
    }
    command = [sys.executable]
    if profile is not None:
        command += ["-m", "cProfile", "-o", str(profile / f"{label}.prof")]
    command += [str(Path(sys.executable).parent / "mail-proxy"), "serve"]
    process = await asyncio.create_subprocess_exec(
        *command, env=env, cwd=ROOT, stderr=asyncio.subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_until_up(url, process)
        yield url, process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout=30)
        except TimeoutError:
            process.kill()
            await process.wait()


async def wait_until_up(url: str, process: asyncio.subprocess.Process) -> None:
    async with httpx.AsyncClient(timeout=1.0) as client:
        for _ in range(300):
            if process.returncode is not None:
                raise RuntimeError(f"mail-proxy serve exited with {process.returncode}")
            try:
                if (await client.get(f"{url}/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"mail-proxy serve did not answer at {url}")


def make_batch(batch: int, size: int) -> list[dict[str, Any]]:
    """``size`` distinct messages: unique ids and recipients, mixed priorities."""
    messages = []
    for n in range(size):
        number = batch * size + n
        message: dict[str, Any] = {
            "id": f"order-{number:08d}",
            "tenant_id": "bench",
            "account_id": "main",
            "from": "Example Shop <noreply@shop.example.com>",
            "to": [f"Customer {number} <customer{number}@mail.example.org>"],
            "subject": f"Your order #{number} has been confirmed",
            "body": BODY,
            "priority": (1, 2, 2, 3)[n % 4],
            "batch_code": f"campaign-{batch % 5}",
            "headers": {"X-Order": str(number)},
        }
        if n % 10 == 0:
            message["cc"] = "archive@shop.example.com"
        messages.append(message)
    return messages


async def run(database: str, db: str, args: argparse.Namespace) -> Result:
    async with running_server(db, args.profile, database) as (url, pid):
        headers = {"X-API-Token": TOKEN}
        limits = httpx.Limits(max_connections=args.concurrency)
        async with httpx.AsyncClient(
            base_url=url, headers=headers, timeout=120.0, limits=limits
        ) as client:
            for path, body in (
                ("/tenants/add", {"id": "bench", "name": "Benchmark"}),
                (
                    "/accounts/add",
                    {
                        "id": "main",
                        "tenant_id": "bench",
                        "host": "localhost",
                        "port": 25,
                        "transport": "null",
                    },
                ),
            ):
                response = await client.post(path, json=body)
                response.raise_for_status()
            batches = [make_batch(b, args.batch_size) for b in range(args.batches + 1)]
            await post(client, batches[0])  # warm-up: connections, caches, statement plans
            latencies: list[float] = []
            gate = asyncio.Semaphore(args.concurrency)

            async def timed(batch: list[dict[str, Any]]) -> None:
                async with gate:
                    started = time.perf_counter()
                    await post(client, batch)
                    latencies.append(time.perf_counter() - started)

            started = time.perf_counter()
            await asyncio.gather(*(timed(batch) for batch in batches[1:]))
            seconds = time.perf_counter() - started
            count = (await client.get("/messages/count_active")).json()
            expected = (args.batches + 1) * args.batch_size
            if count != expected:
                raise RuntimeError(f"{database}: {count} messages queued, expected {expected}")
        rss = peak_rss_kb(pid)
    return Result(database, args.batches * args.batch_size, seconds, latencies, rss)


async def post(client: httpx.AsyncClient, batch: list[dict[str, Any]]) -> None:
    response = await client.post("/messages/add_batch", json={"messages": batch})
    response.raise_for_status()
    result = response.json()
    if result["queued"] != len(batch):
        raise RuntimeError(
            f"only {result['queued']} of {len(batch)} queued: {result['rejected'][:3]}"
        )


def print_table(results: list[Result], args: argparse.Namespace) -> None:
    header = [
        "database",
        "messages",
        "seconds",
        "msgs/s",
        "p50 ms/call",
        "p95 ms/call",
        "peak RSS MB",
    ]
    rows = [header, *(result.row() for result in results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    print(
        f"\nenqueue: {args.batches} x {args.batch_size} messages per call, "
        f"concurrency {args.concurrency}, {os.cpu_count()} CPUs"
    )
    for index, row in enumerate(rows):
        print(" | ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
        if index == 0:
            print("-+-".join("-" * width for width in widths))


async def on_each_database(
    databases: str, pg_url: str, run: Callable[[str, str], Awaitable[T]]
) -> list[T]:
    """``await run(database, db)`` for each of ``databases`` (``sqlite,postgresql``): SQLite in
    a temporary directory, PostgreSQL on a fresh schema of ``pg_url`` dropped afterwards."""
    results = []
    for database in databases.split(","):
        if database == "sqlite":
            with tempfile.TemporaryDirectory(prefix="mp-bench-") as directory:
                results.append(await run("sqlite", str(Path(directory) / "bench.db")))
        elif database == "postgresql":
            schema = f"mp_bench_{uuid.uuid4().hex[:12]}"
            try:
                results.append(await run("postgresql", url_with_schema(pg_url, schema)))
            finally:
                await drop_schema(pg_url, schema)
        else:
            raise SystemExit(f"unknown database {database!r}: use sqlite and/or postgresql")
    return results


async def main(args: argparse.Namespace) -> None:
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    results = await on_each_database(
        args.db, args.pg_url, lambda database, db: run(database, db, args)
    )
    print_table(results, args)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=20, help="timed calls (default 20)")
    parser.add_argument("--batch-size", type=int, default=1000, help="messages per call")
    parser.add_argument("--concurrency", type=int, default=1, help="calls in flight (default 1)")
    parser.add_argument("--db", default="sqlite,postgresql", help="sqlite,postgresql")
    parser.add_argument("--pg-url", default=postgres_server_url(), help="PostgreSQL server URL")
    parser.add_argument("--profile", type=Path, default=None, help="write server cProfile here")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
