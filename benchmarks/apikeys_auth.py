"""The cost of tenant API-key authentication (EE ``ee_apikeys``) against the admin token.

For each database asked for, the benchmark starts ``mail-proxy serve`` (the helpers of
``enqueue.py``: a subprocess on a free port, test mode, no dispatcher) with ``ee_apikeys``
installed, creates tenant ``bench`` (its default key comes back from ``tenants/add``), an
account with the ``null`` transport and a scoped key with ``send``. Then:

* **per request**: ``--requests`` calls of ``GET /tenants/get`` (one small read) with the admin
  token, then with the default key, interleaved in rounds of 100 so that drift in machine load
  hits both alike; reports p50 and p99 of each and the difference (what key authentication adds:
  one indexed read by hash, and the scope check);
* **enqueue**: ``--batches`` calls of ``messages/add_batch`` with ``--batch-size`` messages, with
  the admin token and with the ``send`` key in the order admin, key, key, admin, ... (so that the
  growing table slows both alike); reports messages per second of each.

Usage::

    .venv/bin/python benchmarks/apikeys_auth.py                  # both databases
    .venv/bin/python benchmarks/apikeys_auth.py --db sqlite --requests 4000
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from enqueue import TOKEN, make_batch, on_each_database, post, running_server

from mailproxy_core.testing.db import postgres_server_url

ROUND = 100


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


async def timed_gets(client: httpx.AsyncClient, token: str, count: int) -> list[float]:
    headers = {"X-API-Token": token}
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        response = await client.get("/tenants/get", params={"tenant_id": "bench"}, headers=headers)
        latencies.append(time.perf_counter() - started)
        response.raise_for_status()
    return latencies


async def run(database: str, db: str, args: argparse.Namespace) -> dict[str, Any]:
    async with running_server(db, None, database) as (url, _pid):
        admin = {"X-API-Token": TOKEN}
        async with httpx.AsyncClient(base_url=url, timeout=120.0) as client:
            created = await client.post("/tenants/add", json={"id": "bench"}, headers=admin)
            created.raise_for_status()
            default_key = created.json().get("api_key")
            if not default_key:
                raise SystemExit(
                    "tenants/add returned no api_key: is mailproxy-ee-apikeys installed?"
                )
            account = {"id": "main", "tenant_id": "bench", "transport": "null"}
            (await client.post("/accounts/add", json=account, headers=admin)).raise_for_status()
            scoped = await client.post(
                "/api_keys/add",
                json={"tenant_id": "bench", "name": "sender", "scopes": ["send"]},
                headers=admin,
            )
            scoped.raise_for_status()
            send_key = scoped.json()["api_key"]

            await timed_gets(client, TOKEN, 200)  # warm-up
            await timed_gets(client, default_key, 200)
            by_admin: list[float] = []
            by_key: list[float] = []
            for _ in range(max(1, args.requests // ROUND)):
                by_admin += await timed_gets(client, TOKEN, ROUND)
                by_key += await timed_gets(client, default_key, ROUND)

            batches = [make_batch(b, args.batch_size) for b in range(2 * args.batches + 2)]
            seconds = {"admin": 0.0, "key": 0.0}
            tokens = {"admin": TOKEN, "key": send_key}
            for index, batch in enumerate(batches):
                # admin, key, key, admin, ...: a drift (the table grows) hits both alike.
                who = "admin" if (index % 2 == 0) == ((index // 2) % 2 == 0) else "key"
                client.headers["X-API-Token"] = tokens[who]
                started = time.perf_counter()
                await post(client, batch)
                if index >= 2:  # the first pair warms up
                    seconds[who] += time.perf_counter() - started
            messages = args.batches * args.batch_size
    return {
        "database": database,
        "admin_p50": statistics.median(by_admin) * 1000,
        "admin_p99": percentile(by_admin, 0.99) * 1000,
        "key_p50": statistics.median(by_key) * 1000,
        "key_p99": percentile(by_key, 0.99) * 1000,
        "admin_rate": messages / seconds["admin"],
        "key_rate": messages / seconds["key"],
    }


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(
        f"\nGET /tenants/get x {args.requests} per token; add_batch {args.batches} x "
        f"{args.batch_size} per token"
    )
    print(
        "database   | admin p50 / p99 ms | key p50 / p99 ms | added p50 / p99 ms "
        "| enqueue admin msgs/s | enqueue key msgs/s | key vs admin"
    )
    for r in results:
        print(
            f"{r['database']:<10} | {r['admin_p50']:6.2f} / {r['admin_p99']:6.2f}    "
            f"| {r['key_p50']:6.2f} / {r['key_p99']:6.2f}  "
            f"| {r['key_p50'] - r['admin_p50']:+6.2f} / {r['key_p99'] - r['admin_p99']:+6.2f}    "
            f"| {r['admin_rate']:20,.0f} | {r['key_rate']:18,.0f} "
            f"| {100 * (r['key_rate'] / r['admin_rate'] - 1):+.1f} %"
        )


async def main(args: argparse.Namespace) -> None:
    results = await on_each_database(
        args.db, args.pg_url, lambda database, db: run(database, db, args)
    )
    report(results, args)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="timed GETs per token")
    parser.add_argument("--batches", type=int, default=10, help="timed add_batch calls per token")
    parser.add_argument("--batch-size", type=int, default=1000, help="messages per call")
    parser.add_argument("--db", default="sqlite,postgresql", help="sqlite,postgresql")
    parser.add_argument("--pg-url", default=postgres_server_url(), help="PostgreSQL server URL")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
