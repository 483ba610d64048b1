"""Delivery-report benchmark: events/s to a client application, and the lag after sending.

    .venv/bin/python benchmarks/reports.py [--events 20000] [--db sqlite,postgresql]
                                           [--pg-url URL] [--batch-size 1000] [--baseline]
                                           [--json] [--profile FILE]

For each database the script starts ``mail-proxy serve`` as a subprocess (not in test mode, every
installed plugin, default reporting settings), a recording client application
(``mailproxy_reporter_http.testing.ClientApp``, in this process) and an aiosmtpd sink process that
prints when it accepted each message (``python benchmarks/reports.py sink --port P``). Each phase
runs on a fresh database and service:

1. **drain** -- a tenant on the ``null`` transport whose client answers 503: ``--events`` messages
   are sent and their events pile up in the outbox (the loop keeps them and backs off). Then the
   client recovers and ``instance/run_now`` is called; reported: events/s from that call until
   the client has acknowledged every event, and how many POSTs it took.
2. **live** -- ``--events`` messages over SMTP for a tenant whose client answers promptly;
   reported: events/s (first SMTP acceptance to last report received), the send rate, and the
   lag between the sink accepting a message and the client receiving its ``sent`` entry
   (p50/p99/max).
3. **baseline** (``--baseline``) -- the same sending for a tenant without a client application:
   the send rate with nothing to report, for comparison.

Targets (docs/performance.md): >= 5,000 events/s, p99 lag <= 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import signal
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent / "mail-proxy"
TOKEN = "bench-admin-token"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
PROFILE: Path | None = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def message(tenant: str, number: int) -> dict[str, Any]:
    return {
        "id": f"{tenant}-{number:06d}",
        "tenant_id": tenant,
        "account_id": "main",
        "from": "Example Shop <noreply@shop.example.com>",
        "to": f"customer{number}@mail.example.org",
        "subject": f"Your order #{number} has been confirmed",
        "body": "Thank you for your order. It ships within two working days.\n" * 4,
    }


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# -- the SMTP sink process ---------------------------------------------------------------------


def run_sink(port: int) -> None:
    """Accept every message; print ``<unix time> <X-Genro-Mail-ID>`` as each is accepted."""
    from aiosmtpd.smtp import SMTP

    mail_id = re.compile(rb"^X-Genro-Mail-ID: *(\S+)", re.MULTILINE | re.IGNORECASE)

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            found = mail_id.search(envelope.original_content or b"")
            if found:
                print(f"{time.time():.6f} {found.group(1).decode()}", flush=True)
            return "250 2.0.0 Ok: queued"

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(Handler(), hostname="sink.test"), "127.0.0.1", port
        )
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        server.close()

    asyncio.run(serve())


@asynccontextmanager
async def sink_process() -> AsyncIterator[tuple[int, dict[str, float]]]:
    """The sink on a free port, and ``{message id: accepted at}`` filled as it prints."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "sink", "--port", str(port),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    accepted: dict[str, float] = {}

    async def read() -> None:
        assert process.stdout is not None
        async for line in process.stdout:
            stamp, _, mid = line.decode().strip().partition(" ")
            accepted.setdefault(mid, float(stamp))

    reader = asyncio.create_task(read())
    try:
        for _ in range(200):
            try:
                _r, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                await asyncio.sleep(0.05)
        yield port, accepted
    finally:
        process.terminate()
        await process.wait()
        reader.cancel()


# -- the service -------------------------------------------------------------------------------


@asynccontextmanager
async def service(db: str) -> AsyncIterator[httpx.AsyncClient]:
    """``mail-proxy serve`` on ``db``; yields an admin API client."""
    port = free_port()
    env = {
        **os.environ,
        "MAILPROXY_DB": db,
        "MAILPROXY_API_TOKEN": TOKEN,
        "MAILPROXY_PORT": str(port),
        "MAILPROXY_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode(),
        "MAILPROXY_TEST_MODE": "0",
        "MAILPROXY_LOG_LEVEL": "WARNING",
        "MAILPROXY_MAX_PER_ACCOUNT": "20",
        "MAILPROXY_SMTP__MAX_CONNECTIONS": "10",
        "MAILPROXY_SMTP__LOCAL_HOSTNAME": "bench.test",
    }
    command = [str(BIN), "serve"]
    if PROFILE is not None:  # --profile: the service under cProfile
        command = [sys.executable, "-m", "cProfile", "-o", str(PROFILE), *command]
    process = await asyncio.create_subprocess_exec(
        *command, env=env, cwd=ROOT, stderr=asyncio.subprocess.DEVNULL
    )
    headers = {"X-API-Token": TOKEN}
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=120.0
    ) as client:
        try:
            for _ in range(300):
                try:
                    if (await client.get("/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            yield client
        finally:
            process.send_signal(signal.SIGTERM)
            await process.wait()


async def call(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> Any:
    response = await client.post(path, json=body)
    if response.status_code != 200:
        raise RuntimeError(f"{path}: {response.status_code} {response.text[:300]}")
    return response.json()


async def add_tenant(
    client: httpx.AsyncClient, tenant: str, app_url: str | None, account: dict[str, Any]
) -> None:
    await call(
        client,
        "/tenants/add",
        {"id": tenant, "client_base_url": app_url, "client_sync_path": f"/{tenant}"},
    )
    await call(client, "/accounts/add", {"id": "main", "tenant_id": tenant, **account})


async def enqueue(client: httpx.AsyncClient, tenant: str, count: int, batch: int) -> None:
    for start in range(0, count, batch):
        messages = [message(tenant, n) for n in range(start, min(start + batch, count))]
        result = await call(client, "/messages/add_batch", {"messages": messages})
        if result["queued"] != len(messages):
            raise RuntimeError(f"only {result['queued']} of {len(messages)} queued")


async def wait_sent(client: httpx.AsyncClient, tenant: str, count: int) -> None:
    while True:
        page = await client.get(
            "/messages/list", params={"tenant_id": tenant, "status": "sent", "offset": count - 1}
        )
        if page.json():
            return
        await asyncio.sleep(0.2)


class Receipts:
    """``{message id: when its first acknowledged entry arrived}`` for one tenant's path,
    updated incrementally (the client application keeps every request)."""

    def __init__(self, app: Any, path: str) -> None:
        self.app, self.path = app, path
        self.seen: dict[str, float] = {}
        self._next = 0

    def update(self) -> dict[str, float]:
        requests = self.app.requests
        while self._next < len(requests) and requests[self._next].status:
            request = requests[self._next]
            self._next += 1
            if request.path == self.path and 200 <= request.status < 300:
                for entry in request.entries:
                    self.seen.setdefault(entry["id"], request.received_at)
        return self.seen


async def wait_acknowledged(app: Any, path: str, count: int, within: float) -> dict[str, float]:
    receipts = Receipts(app, path)
    deadline = time.monotonic() + within
    while len(seen := receipts.update()) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(seen)} of {count} events reported in time")
        await asyncio.sleep(0.05)
    return seen


# -- one database ------------------------------------------------------------------------------


async def drain_phase(db: str, events: int, batch: int) -> dict[str, Any]:
    """A backlog of events while the client is down, then ``run_now``."""
    from mailproxy_reporter_http.testing import ClientApp

    with ClientApp(status=503) as app:
        async with service(db) as client:
            null = {"host": "null.invalid", "port": 25, "transport": "null"}
            await add_tenant(client, "drain", app.url, null)
            await enqueue(client, "drain", events, batch)
            await wait_sent(client, "drain", events)
            app.status = 200
            started = time.time()
            await call(client, "/instance/run_now", {})
            drained = await wait_acknowledged(app, "/drain", events, within=300)
    return {
        "drain_events_per_s": events / (max(drained.values()) - started),
        "drain_posts": len([r for r in app.acknowledged("/drain") if r.entries]),
    }


async def live_phase(db: str, events: int, batch: int) -> dict[str, Any]:
    """SMTP sending while the client answers at once: send rate and report lag."""
    from mailproxy_reporter_http.testing import ClientApp

    with ClientApp() as app:
        async with sink_process() as (sink_port, accepted), service(db) as client:
            smtp = {"host": "127.0.0.1", "port": sink_port, "use_tls": False}
            await add_tenant(client, "live", app.url, smtp)
            await enqueue(client, "live", events, batch)
            received = await wait_acknowledged(app, "/live", events, within=600)
            await wait_accepted(accepted, events)
    lags = [received[mid] - accepted[mid] for mid in received if mid in accepted]
    return {
        "live_events_per_s": events / (max(received.values()) - min(accepted.values())),
        "live_posts": len([r for r in app.acknowledged("/live") if r.entries]),
        "live_send_rate": rate(list(accepted.values())),
        "lag_p50_ms": 1000 * statistics.median(lags),
        "lag_p99_ms": 1000 * percentile(lags, 0.99),
        "lag_max_ms": 1000 * max(lags),
        "lag_samples": len(lags),
    }


async def baseline_phase(db: str, events: int, batch: int) -> dict[str, Any]:
    """The same sending for a tenant without a client application: nothing to report."""
    async with sink_process() as (sink_port, accepted), service(db) as client:
        smtp = {"host": "127.0.0.1", "port": sink_port, "use_tls": False}
        await add_tenant(client, "quiet", None, smtp)
        await enqueue(client, "quiet", events, batch)
        await wait_accepted(accepted, events, within=600)
    return {"quiet_send_rate": rate(list(accepted.values()))}


async def wait_accepted(accepted: dict[str, float], count: int, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while len(accepted) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the sink accepted only {len(accepted)} of {count} messages")
        await asyncio.sleep(0.05)


def rate(stamps: list[float]) -> float:
    """Messages per second between the first and the last of ``stamps``."""
    return (len(stamps) - 1) / (max(stamps) - min(stamps))


@asynccontextmanager
async def fresh_database(kind: str, pg_url: str) -> AsyncIterator[str]:
    """A new SQLite file, or a new PostgreSQL schema (dropped afterwards)."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="mp-reports-") as directory:
            yield str(Path(directory) / "bench.db")
        return
    from mailproxy_core.testing.db import drop_schema, url_with_schema

    schema = f"mp_bench_{uuid.uuid4().hex[:12]}"
    try:
        yield url_with_schema(pg_url, schema)
    finally:
        await drop_schema(pg_url, schema)


async def run_database(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    """Every phase on its own fresh database and service."""
    phases = [drain_phase, live_phase] + ([baseline_phase] if args.baseline else [])
    results: dict[str, Any] = {"quiet_send_rate": None}
    for phase in phases:
        async with fresh_database(kind, args.pg_url) as db:
            results.update(await phase(db, args.events, args.batch_size))
    return results


async def main(args: argparse.Namespace) -> None:
    results = {}
    for kind in args.db.split(","):
        print(f"{kind}: {args.events} events ...", file=sys.stderr, flush=True)
        results[kind] = await run_database(kind, args)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print("| database | drain events/s | drain POSTs | live events/s | live POSTs "
          "| lag p50 ms | lag p99 ms | lag max ms | sends/s | sends/s, no client |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for kind, r in results.items():
        quiet = "-" if r["quiet_send_rate"] is None else f"{r['quiet_send_rate']:,.0f}"
        print(
            f"| {kind} | {r['drain_events_per_s']:,.0f} | {r['drain_posts']} "
            f"| {r['live_events_per_s']:,.0f} | {r['live_posts']} | {r['lag_p50_ms']:.0f} "
            f"| {r['lag_p99_ms']:.0f} | {r['lag_max_ms']:.0f} | {r['live_send_rate']:,.0f} "
            f"| {quiet} |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode")
    sink = sub.add_parser("sink", help="the recording SMTP sink process")
    sink.add_argument("--port", type=int, required=True)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=1000, help="messages per add_batch")
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--pg-url", default=os.environ.get("MAILPROXY_TEST_PG_URL", DEFAULT_PG_URL))
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="also send --events messages for a tenant without a client application",
    )
    parser.add_argument("--profile", type=Path, help="write a cProfile of the service here")
    arguments = parser.parse_args()
    PROFILE = arguments.profile
    if arguments.mode == "sink":
        run_sink(arguments.port)
    else:
        asyncio.run(main(arguments))
