"""Delivery throughput: REST enqueue → dispatcher → SMTP sink → status written.

One run measures, against an SMTP sink on loopback (Postfix's ``smtp-sink`` when installed,
else an aiosmtpd sink in its own process):

1. **raw** — the limit of aiosmtplib alone: the same messages sent over ``--connections`` (10)
   connections, each built per mail as an ``EmailMessage`` with ``email.policy.SMTP`` (the
   reference of DESIGN.md §9 and of the ratio target), with the service's cached policy, and
   built beforehand (the wire-only limit);
2. **sqlite** — the service end to end on SQLite, one ``mail-proxy serve`` process: ``--messages``
   (20,000) messages posted to ``messages/add_batch`` in calls of 1,000 while the dispatcher
   runs, until every one is ``sent`` in the database; msgs/s, ratio to raw, peak RSS;
3. **latency** — immediate-priority latency under a ``--backlog`` (10,000) bulk backlog: four
   times that many bulk messages are queued, then one immediate message at a time is posted to
   ``messages/add`` while the backlog drains, timed from the POST to its arrival at a second,
   timing sink; p50/p99 (and the POST's own duration). Run twice: with the backlog alone (the
   target's condition), then while a client also posts bulk batches of 1,000;
4. **scale** — delivery rate with ``--large`` (100,000) queued vs ``--small`` (1,000) queued;
5. **postgresql** — one and then two ``mail-proxy worker`` processes sharing a PostgreSQL schema
   (``--pg-messages``, default 10,000, enqueued through a ``serve`` process in test mode).

Rates of phases 4 and 5 are steady-state: messages sent between 10 % and 90 % of the window,
divided by the time between those two points (the sent count is polled in the database).

The service runs with ``MAILPROXY_MAX_PER_ACCOUNT=50`` and ``MAILPROXY_SMTP__MAX_CONNECTIONS=10``
(one account, the sink's): the default per-account limit of 3 would otherwise cap the single
account at 3 connections, below the 10 of the raw measurement. Global concurrency stays at its
default of 10 per process.

Usage::

    .venv/bin/python benchmarks/throughput.py                      # everything, default sizes
    .venv/bin/python benchmarks/throughput.py --phases raw,sqlite --messages 5000
    .venv/bin/python benchmarks/throughput.py --profile /tmp/prof  # cProfile the sqlite serve

When ``smtp-sink`` is missing and the script runs as root on Debian, it installs ``postfix``
non-interactively first (``--no-install`` to skip that; ``--sink aiosmtpd`` to force the Python
sink). The PostgreSQL server comes from ``--pg-url`` (default ``$MAILPROXY_TEST_PG_URL`` or
``postgresql://postgres@127.0.0.1:5432/test``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from email.policy import SMTP
from pathlib import Path
from typing import Any

import aiosmtplib

sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput_support import (
    Service,
    Sink,
    bench_message,
    count_sent,
    make_batch,
    payload,
    peak_rss_kb,
    postgres_schema,
    start_sink,
    steady_rate,
    wait_until_sent,
)

from mailproxy_core.dispatch import compose as compose_module
from mailproxy_core.dispatch.compose import POLICY as SERVICE_POLICY
from mailproxy_core.dispatch.compose import compose, serialize
from mailproxy_core.testing.db import postgres_server_url

PHASES = ("raw", "sqlite", "latency", "scale", "postgresql")


# -- phase 1: the raw limit ------------------------------------------------------------------


async def raw_limit(
    sink: Sink, count: int, connections: int, *, stdlib: bool, prebuilt: bool = False
) -> float:
    """Msgs/s of aiosmtplib alone, composing each message per mail.

    ``stdlib``: with ``email.policy.SMTP`` as is (DESIGN.md §9's reference); else with the
    service's composer and its header cache. ``prebuilt``: the bytes are built before the clock
    starts (the wire-only limit).
    """
    numbers = iter(range(count))
    compose_module.POLICY = SMTP if stdlib else SERVICE_POLICY
    built: dict[int, tuple[bytes, Any]] = {}
    if prebuilt:
        for number in range(count):
            mime, envelope = compose(bench_message(number))
            built[number] = (serialize(mime), envelope)

    async def connection() -> None:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=sink.port, start_tls=False, timeout=30)
        await smtp.connect()
        for number in numbers:
            if prebuilt:
                data, envelope = built[number]
            else:
                mime, envelope = compose(bench_message(number))
                data = serialize(mime)
            await smtp.sendmail(envelope.sender, list(envelope.recipients), data)
        await smtp.quit()

    started = time.perf_counter()
    try:
        await asyncio.gather(*(connection() for _ in range(connections)))
    finally:
        compose_module.POLICY = SERVICE_POLICY
    return count / (time.perf_counter() - started)


# -- phase 2: end to end on SQLite -----------------------------------------------------------


async def end_to_end(service: Service, count: int) -> tuple[float, float]:
    """Post ``count`` messages while the dispatcher runs; (msgs/s overall, steady msgs/s)."""
    batches = [make_batch(b, 1000, count) for b in range((count + 999) // 1000)]
    samples: list[tuple[float, int]] = []
    started = time.perf_counter()
    poller = asyncio.create_task(wait_until_sent(service, count, samples, within=count / 20))
    for batch in batches:
        await service.enqueue(batch)
    await poller
    elapsed = time.perf_counter() - started
    return count / elapsed, steady_rate(samples, count)


# -- phase 3: immediate latency under a backlog ----------------------------------------------


async def immediate_latency(
    service: Service, timing: Sink, backlog: int, samples: int, *, feed: bool
) -> tuple[list[float], list[float], int]:
    """Latencies (s) of immediate messages posted one at a time while a bulk backlog drains.

    Four times ``backlog`` bulk messages are queued first, so at least ``backlog`` are still
    ahead during sampling (checked: the fewest queued is returned). With ``feed`` a client also
    keeps posting bulk batches of 1,000 while sampling (each holds the write lock for its
    insert).
    Returns the latencies (POST → arrival at the timing sink), the POST durations, and the
    fewest bulk messages seen queued while sampling.
    """
    await service.suspend()
    batches = (4 * backlog + 999) // 1000
    for b in range(batches):
        await service.enqueue(make_batch(b, 1000, 10**7))
    await service.activate()
    await asyncio.sleep(0.5)  # let the dispatcher reach full speed
    fewest = batches * 1000
    sampling = True

    async def watch() -> None:
        nonlocal batches, fewest
        while sampling:
            # Every sent message counted as bulk: a lower bound of the bulk still queued.
            queued = batches * 1000 - await count_sent(service)
            fewest = min(fewest, queued)
            if feed and queued < 4 * backlog:
                await service.enqueue(make_batch(batches, 1000, 10**7))
                batches += 1
            await asyncio.sleep(0.2)

    watcher = asyncio.create_task(watch())
    posted: dict[str, float] = {}
    post_times: list[float] = []
    try:
        for n in range(samples):
            mid = f"urgent-{n:05d}"
            message = {**payload(10**8 + n, "urgent"), "id": mid, "priority": "immediate"}
            posted[mid] = time.time()
            await service.add(message)
            post_times.append(time.time() - posted[mid])
            await asyncio.sleep(0.04 + (n % 5) * 0.01)
    finally:
        sampling = False
        await watcher
    arrivals = await timing.arrivals(set(posted), within=30)
    return [arrivals[mid] - posted[mid] for mid in posted], post_times, fewest


# -- phase 4: rate with a large vs a small queue ---------------------------------------------


async def queued_rate(service: Service, queued: int, window: int) -> float:
    """Steady msgs/s over the first ``window`` deliveries with ``queued`` messages waiting."""
    await service.suspend()
    for b in range((queued + 999) // 1000):
        await service.enqueue(make_batch(b, 1000, queued))
    samples: list[tuple[float, int]] = []
    await service.activate()
    await wait_until_sent(service, window, samples, within=window / 20)
    return steady_rate(samples, window)


# -- reporting -------------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


async def main(args: argparse.Namespace) -> None:
    phases = set(args.phases.split(","))
    unknown = phases - set(PHASES)
    if unknown:
        raise SystemExit(f"unknown phase(s) {sorted(unknown)}; choose from {', '.join(PHASES)}")
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    report: list[str] = []

    def note(line: str) -> None:
        report.append(line)
        print(line, file=sys.stderr, flush=True)

    results: dict[str, Any] = {}
    async with start_sink(args.sink, install=not args.no_install) as sink:
        note(f"sink: {sink.kind} on 127.0.0.1:{sink.port}; {os.cpu_count()} CPUs")
        if "raw" in phases or "sqlite" in phases:
            await raw_limit(sink, 500, args.connections, stdlib=True)  # warm-up
            results["raw"] = await raw_limit(sink, args.raw_messages, args.connections, stdlib=True)
            results["raw_cached"] = await raw_limit(
                sink, args.raw_messages, args.connections, stdlib=False
            )
            results["raw_wire"] = await raw_limit(
                sink, args.raw_messages, args.connections, stdlib=False, prebuilt=True
            )
            note(
                f"raw aiosmtplib, {args.connections} connections, EmailMessage (policy SMTP) "
                f"built per mail: {results['raw']:,.0f} msgs/s; with the service's composer "
                f"(header cache): {results['raw_cached']:,.0f} msgs/s; bytes built beforehand "
                f"(wire only): {results['raw_wire']:,.0f} msgs/s ({args.raw_messages:,} each)"
            )
        if "sqlite" in phases:
            async with Service.sqlite(sink, profile=args.profile) as service:
                rate, steady = await end_to_end(service, args.messages)
                rss = peak_rss_kb(service.pids[0]) / 1024
            ratio = rate / results["raw"]
            cached = rate / results["raw_cached"]
            wire = rate / results["raw_wire"]
            note(
                f"service on SQLite, {args.messages:,} messages end to end: {rate:,.0f} msgs/s "
                f"(steady {steady:,.0f}); ratio to raw {ratio:.2f} (to raw with the service's "
                f"composer {cached:.2f}, to the wire-only limit {wire:.2f}) [target >= 0.6: "
                f"{verdict(ratio >= 0.6)}]; peak RSS {rss:.0f} MB [target <= 150: "
                f"{verdict(rss <= 150)}]"
            )
        if "latency" in phases:
            for feed in (False, True):
                async with start_sink("aiosmtpd", install=False, record=True) as timing:
                    async with Service.sqlite(sink, urgent_sink=timing) as service:
                        latencies, posts, fewest = await immediate_latency(
                            service, timing, args.backlog, args.urgent, feed=feed
                        )
                        rss = peak_rss_kb(service.pids[0]) / 1024
                p50, p99 = percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000
                post50, post99 = percentile(posts, 0.5) * 1000, percentile(posts, 0.99) * 1000
                target = f" [target p99 <= 100: {verdict(p99 <= 100)}]" if not feed else ""
                note(
                    f"immediate latency under a backlog of at least {fewest:,} bulk messages"
                    f"{', bulk batches posted meanwhile' if feed else ''} ({len(latencies)} "
                    f"samples): p50 {p50:.0f} ms, p99 {p99:.0f} ms, max "
                    f"{max(latencies) * 1000:.0f} ms{target}; the POST alone: p50 {post50:.0f} ms,"
                    f" p99 {post99:.0f} ms; peak RSS {rss:.0f} MB"
                )
        if "scale" in phases:
            rates = {}
            for queued, window in ((args.small, args.small), (args.large, min(args.large, 20_000))):
                async with Service.sqlite(sink) as service:
                    rates[queued] = await queued_rate(service, queued, window)
                    rss = peak_rss_kb(service.pids[0]) / 1024
                note(
                    f"rate with {queued:,} queued: {rates[queued]:,.0f} msgs/s "
                    f"(first {window:,} deliveries); peak RSS {rss:.0f} MB"
                )
            ratio = rates[args.large] / rates[args.small]
            note(
                f"rate at {args.large:,} / rate at {args.small:,} queued: {ratio:.2f} "
                f"[target >= 0.8: {verdict(ratio >= 0.8)}]"
            )
        if "postgresql" in phases:
            rates = {}
            for workers in (1, 2):
                async with postgres_schema(args.pg_url) as db_url:
                    async with Service.postgres(sink, db_url) as service:
                        await service.suspend()
                        for b in range((args.pg_messages + 999) // 1000):
                            await service.enqueue(make_batch(b, 1000, args.pg_messages))
                        await service.start_workers(workers)
                        samples: list[tuple[float, int]] = []
                        await service.activate()
                        await wait_until_sent(
                            service, args.pg_messages, samples, within=args.pg_messages / 20
                        )
                        rates[workers] = steady_rate(samples, args.pg_messages)
                        rss = max(peak_rss_kb(pid) for pid in service.worker_pids) / 1024
                note(
                    f"PostgreSQL, {workers} worker(s), {args.pg_messages:,} messages: "
                    f"{rates[workers]:,.0f} msgs/s; peak worker RSS {rss:.0f} MB"
                )
            scale = rates[2] / rates[1]
            note(
                f"two PostgreSQL workers / one: {scale:.2f} "
                f"[target >= 1.3: {verdict(scale >= 1.3)}]"
            )
        print("\nthroughput")
        for line in report:
            print(f"  {line}", flush=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--phases", default=",".join(PHASES), help=f"comma-separated: {','.join(PHASES)}")
    add("--messages", type=int, default=20_000, help="end-to-end messages (default 20,000)")
    add("--raw-messages", type=int, default=5_000, help="messages of the raw measurement")
    add("--connections", type=int, default=10, help="raw aiosmtplib connections (default 10)")
    add("--backlog", type=int, default=10_000, help="bulk backlog of the latency phase")
    add("--urgent", type=int, default=150, help="immediate messages timed (default 150)")
    add("--small", type=int, default=1_000, help="small queue of the scale phase")
    add("--large", type=int, default=100_000, help="large queue of the scale phase")
    add("--pg-messages", type=int, default=10_000, help="messages of the PostgreSQL phase")
    add("--pg-url", default=postgres_server_url(), help="PostgreSQL server URL")
    add("--sink", choices=("auto", "smtp-sink", "aiosmtpd"), default="auto", help="SMTP sink")
    add("--no-install", action="store_true", help="never install postfix for smtp-sink")
    add("--profile", type=Path, default=None, help="cProfile the SQLite serve process into DIR")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
