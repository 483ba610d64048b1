"""Dashboard message search on a large queue: response time of ``GET /ui/messages`` pages.

Fills a fresh database with ``--messages`` messages (default 200,000, about 1 KB each) over
``--tenants`` tenants with ``messages/add_batch`` (test mode: nothing is sent, every message stays
pending), signs in to the dashboard as the admin and times each kind of search page ``--repeat``
times after one untimed call, in process (Quart's test client: session check, the kernel query
and template rendering, no network). Prints p50 / p95 per kind and overall. Target: p95 < 200 ms
per search page.

    .venv/bin/python benchmarks/dashboard_search.py [--messages 200000] [--tenants 4]
                                                   [--repeat 20] [--db sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from mailproxy_core import Settings
from mailproxy_core.app import create_app, kernel_of
from mailproxy_core.testing.db import drop_schema, postgres_server_url, url_with_schema

TOKEN = "bench-dashboard-token-0123456789"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def message(n: int, tenants: int) -> dict[str, Any]:
    tenant = f"t{n % tenants}"
    return {
        "id": f"m-{n}",
        "tenant_id": tenant,
        "account_id": "main",
        "from": f"Shop <shop@{tenant}.example>",
        "to": f"Customer {n} <customer{n}@example.org>",
        "subject": f"Order {n} confirmed",
        "body": "Thanks for your order. " * 25,
        "batch_code": f"campaign-{n // 5000}",
    }


async def fill(client: Any, total: int, tenants: int) -> float:
    started = time.perf_counter()
    headers = {"X-API-Token": TOKEN}
    for t in range(tenants):
        await client.post("/tenants/add", json={"id": f"t{t}"}, headers=headers)
        await client.post(
            "/accounts/add",
            json={"id": "main", "tenant_id": f"t{t}", "host": "127.0.0.1", "port": 9},
            headers=headers,
        )
    for start in range(0, total, 1000):
        batch = [message(n, tenants) for n in range(start, min(total, start + 1000))]
        response = await client.post(
            "/messages/add_batch", json={"messages": batch}, headers=headers
        )
        body = await response.get_json()
        assert body["queued"] == len(batch), body
    return time.perf_counter() - started


async def sign_in(client: Any) -> None:
    page = await (await client.get("/ui/login")).get_data(as_text=True)
    csrf = CSRF.search(page)
    assert csrf
    response = await client.post("/ui/login", form={"token": TOKEN, "csrf_token": csrf.group(1)})
    assert response.status_code == 302, await response.get_data(as_text=True)


def searches(total: int, tenants: int) -> dict[str, str]:
    rare = total // 2 + 7
    last_page_cursor = total // 10
    return {
        "first page (all tenants)": "/ui/messages",
        "one tenant": "/ui/messages?tenant_id=t1",
        "tenant + status": "/ui/messages?tenant_id=t2&status=pending",
        "recipient, one match": f"/ui/messages?tenant_id=t{rare % tenants}"
        f"&recipient=customer{rare}@example.org",
        "recipient, all tenants": "/ui/messages?recipient=customer1",
        "subject": f"/ui/messages?tenant_id=t0&subject=Order {rare - rare % tenants}",
        "client id": f"/ui/messages?client_id=m-{rare}",
        "batch code": f"/ui/messages?tenant_id=t3&batch_code=campaign-{total // 10000}",
        "deep page (keyset cursor)": f"/ui/messages?tenant_id=t1&before={last_page_cursor}",
        "date range": "/ui/messages?date_from=2000-01-01&date_to=2100-01-01",
    }


async def run(db: str, args: argparse.Namespace) -> list[tuple[str, float, float]]:
    settings = Settings.from_values(db=db, api_token=TOKEN, test_mode=True)
    app = create_app(settings)
    rows: list[tuple[str, float, float]] = []
    async with app.test_app():
        client = app.test_client()
        elapsed = await fill(client, args.messages, args.tenants)
        print(f"  filled {args.messages:,} messages in {elapsed:.0f} s", flush=True)
        data = kernel_of(app).data
        if data.dialect == "postgresql":
            # What autovacuum does within a minute of a bulk load: without statistics the
            # planner guesses, and the first minute would be measured instead of the steady state.
            await data.execute("ANALYZE messages")
        await sign_in(client)
        everything: list[float] = []
        for name, path in searches(args.messages, args.tenants).items():
            await (await client.get(path)).get_data()  # untimed: first use of the query plan
            times = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                response = await client.get(path)
                await response.get_data()
                times.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, (path, response.status_code)
            everything += times
            p95 = statistics.quantiles(times, n=20)[18]
            rows.append((name, statistics.median(times), p95))
        rows.append(
            (
                "all searches",
                statistics.median(everything),
                statistics.quantiles(everything, n=20)[18],
            )
        )
    return rows


async def main(args: argparse.Namespace) -> int:
    worst = 0.0
    for database in args.db.split(","):
        print(f"== {database}: {args.messages:,} messages, {args.tenants} tenants", flush=True)
        if database == "sqlite":
            with tempfile.TemporaryDirectory(prefix="mp-bench-") as tmp:
                rows = await run(str(Path(tmp) / "bench.db"), args)
        elif database == "postgresql":
            schema = f"mp_bench_ui_{uuid.uuid4().hex[:12]}"
            try:
                rows = await run(url_with_schema(args.pg_url, schema), args)
            finally:
                await drop_schema(args.pg_url, schema)
        else:
            raise SystemExit(f"unknown database {database!r}: use sqlite and/or postgresql")
        print(f"  {'search':32} {'p50 ms':>8} {'p95 ms':>8}")
        for name, p50, p95 in rows:
            print(f"  {name:32} {p50:8.1f} {p95:8.1f}")
            worst = max(worst, p95)
    print(f"worst p95: {worst:.1f} ms (target < 200 ms)")
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--tenants", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--db", default="sqlite")
    parser.add_argument("--pg-url", default=postgres_server_url())
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
