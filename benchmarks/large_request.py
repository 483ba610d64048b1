"""Latency of unrelated API calls while the largest accepted request is processed.

Starts ``mail-proxy serve`` (test mode) as a subprocess, on SQLite and then on a fresh PostgreSQL
schema (``--db``), creates a tenant and an account, then measures ``GET /tenants/list``
(authenticated, one database read; ``--probe-path`` names another call) every 20 ms:

1. idle, for ``--probes`` calls;
2. while one ``messages/add_batch`` of the largest size the defaults accept is in flight:
   ``max_batch_messages`` (1,000) messages of ``max_recipients`` (1,000) distinct recipients
   each, about 25 MB of JSON, just under ``max_request_bytes`` (32 MiB).

The large request is sent by a separate process, so that building and uploading it does not
delay the probes on the client side. Then the same large body is read back from the command log
(``command_log/list``, which returns the stored payload), and the thousand messages it queued
are listed (``messages/list``, one page of 28 MB), while the probes go on. Reports p50/p99/max of
the probes in each phase and how long the large calls took.

The large request is depth-checked and parsed in pieces (``api/json_yielding.py``), validated in
slices (``mailproxy_core.pacing``) and stored in one transaction; the read-back embeds the stored
text in the answer without decoding it; the listing decodes the rows and encodes the page item by
item, in slices. Target and figures: docs/performance.md.

Usage::

    .venv/bin/python benchmarks/large_request.py
    .venv/bin/python benchmarks/large_request.py --messages 200 --recipients 1000
    .venv/bin/python benchmarks/large_request.py --probe-path /health
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any, TypeVar

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from enqueue import TOKEN, on_each_database, running_server

from mailproxy_core.testing.db import postgres_server_url

HEADERS = {"X-API-Token": TOKEN}
T = TypeVar("T")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def large_batch(messages: int, recipients: int) -> bytes:
    batch = [
        {
            "id": f"big-{n}",
            "tenant_id": "bench",
            "account_id": "null",
            "from": "sender@example.com",
            "to": [f"u{n}.{i}@r{i % 97}.example.com" for i in range(recipients)],
            "subject": f"large {n}",
            "body": "hello",
        }
        for n in range(messages)
    ]
    return json.dumps({"messages": batch}, separators=(",", ":")).encode()


async def probe(client: httpx.AsyncClient, url: str, path: str, stop: asyncio.Event) -> list[float]:
    latencies: list[float] = []
    while not stop.is_set():
        started = time.perf_counter()
        response = await client.get(f"{url}{path}", headers=HEADERS)
        response.raise_for_status()
        latencies.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.02)
    return latencies


def send_large(url: str, messages: int, recipients: int) -> tuple[int, Any, float]:
    """POST the large batch (in a worker process); its status, ``queued`` and seconds taken."""
    body = large_batch(messages, recipients)
    started = time.perf_counter()
    response = httpx.post(
        f"{url}/messages/add_batch",
        content=body,
        headers={**HEADERS, "Content-Type": "application/json"},
        timeout=600,
    )
    return response.status_code, response.json().get("queued"), time.perf_counter() - started


def read_back(url: str) -> tuple[int, int, float]:
    """Read the large request back from the command log (in a worker process): its status, the
    answer's size in bytes and the seconds taken."""
    started = time.perf_counter()
    response = httpx.get(
        f"{url}/command_log/list",
        params={"endpoint_filter": "messages/add_batch", "limit": 1},
        headers=HEADERS,
        timeout=600,
    )
    return response.status_code, len(response.content), time.perf_counter() - started


def list_messages(url: str) -> tuple[int, int, float]:
    """``messages/list`` of the tenant's messages (in a worker process): status, size, seconds."""
    started = time.perf_counter()
    response = httpx.get(
        f"{url}/messages/list", params={"tenant_id": "bench"}, headers=HEADERS, timeout=600
    )
    return response.status_code, len(response.content), time.perf_counter() - started


def summary(label: str, latencies: list[float]) -> str:
    return (
        f"{label:<28} n={len(latencies):<5} p50={statistics.median(latencies):7.1f} ms  "
        f"p99={percentile(latencies, 0.99):7.1f} ms  max={max(latencies):7.1f} ms"
    )


async def main(args: argparse.Namespace) -> None:
    body = large_batch(args.messages, args.recipients)
    print(f"large request: {args.messages} messages x {args.recipients} recipients, "
          f"{len(body) / 1e6:.1f} MB")  # fmt: skip
    await on_each_database(args.db, args.pg_url, lambda name, db: measure(args, name, db))


async def measure(args: argparse.Namespace, name: str, db: str) -> None:
    print(f"--- {name}")
    async with running_server(db, None, "large") as (url, _pid):
        async with httpx.AsyncClient(timeout=600) as client:
            await client.post(f"{url}/tenants/add", json={"id": "bench"}, headers=HEADERS)
            account = {"id": "null", "tenant_id": "bench", "transport": "null"}
            await client.post(f"{url}/accounts/add", json=account, headers=HEADERS)

            idle_stop = asyncio.Event()
            idle = asyncio.create_task(probe(client, url, args.probe_path, idle_stop))
            await asyncio.sleep(args.probes * 0.025)
            idle_stop.set()
            print(summary("idle", await idle))

            loop = asyncio.get_running_loop()
            # the large calls come from another process: building and uploading 27 MB in
            # this one would delay the probes here, not in the server
            with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:

                async def probed(work: Callable[..., T], *work_args: Any) -> tuple[T, list[float]]:
                    """``work(*work_args)`` in the pool, probing meanwhile; its result and the
                    probes. Probing stops before the pool shuts down: joining its process blocks
                    this loop for a few hundred ms, which a probe would count as the server's."""
                    stop = asyncio.Event()
                    probes = asyncio.create_task(probe(client, url, args.probe_path, stop))
                    result = await loop.run_in_executor(pool, work, *work_args)
                    stop.set()
                    return result, await probes

                large = await probed(send_large, url, args.messages, args.recipients)
                (status, queued, took), probes = large
                print(f"large request: HTTP {status}, queued {queued}, {took:.1f} s")
                print(summary("during the large request", probes))

                (status, size, took), probes = await probed(read_back, url)
                print(f"reading it back: HTTP {status}, {size / 1e6:.1f} MB, {took:.1f} s")
                print(summary("during the read-back", probes))

                (status, size, took), probes = await probed(list_messages, url)
                print(f"listing the messages: HTTP {status}, {size / 1e6:.1f} MB, {took:.1f} s")
                print(summary("during the listing", probes))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--recipients", type=int, default=1000)
    parser.add_argument("--probes", type=int, default=200)
    parser.add_argument("--db", default="sqlite,postgresql", help="sqlite and/or postgresql")
    parser.add_argument("--pg-url", default=postgres_server_url(), help="PostgreSQL server URL")
    parser.add_argument(
        "--probe-path", default="/tenants/list", help="the unrelated call (e.g. /health)"
    )
    asyncio.run(main(parser.parse_args()))
