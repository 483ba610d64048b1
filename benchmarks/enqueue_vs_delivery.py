"""Delivery while the API enqueues at full speed (SQLite): does sending keep its pace?

One ``mail-proxy serve`` process on a fresh SQLite file (dispatcher running, one account on an
SMTP sink on loopback: Postfix's ``smtp-sink`` when installed, else an aiosmtpd sink process),
with a backlog of ``--backlog`` (20,000) messages queued while sending is suspended. Then:

1. **unloaded** — sending resumes; the delivery rate (``sent`` events per second, polled in the
   database) is measured over ``--seconds`` (15) with no other client;
2. **loaded** — ``--clients`` (20) clients post ``messages/add_batch`` calls of ``--batch-size``
   (100) messages back to back for ``--seconds``; the delivery rate is measured over the same
   window, together with the messages accepted per second and the p50/p99 of the POSTs.

Floor: the loaded delivery rate is at least half the unloaded one. SQLite has one writer at a
time; the API's inserts and the dispatcher's commits take *write turns* round-robin across lanes
(``mailproxy_core/db/_sqlite.py``), which is what keeps the dispatcher from being starved.

Usage::

    .venv/bin/python benchmarks/enqueue_vs_delivery.py
    .venv/bin/python benchmarks/enqueue_vs_delivery.py --clients 20 --seconds 30 --sink aiosmtpd
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput_support import Service, count_sent, make_batch, payload, start_sink

FLOOR = 0.5
"""Loaded delivery rate / unloaded delivery rate must be at least this."""


async def delivery_rate(service: Service, seconds: float) -> tuple[float, int]:
    """(msgs/s, messages) sent during the next ``seconds``."""
    first = await count_sent(service)
    started = time.perf_counter()
    await asyncio.sleep(seconds)
    sent = await count_sent(service) - first
    return sent / (time.perf_counter() - started), sent


async def enqueue_flood(
    service: Service, clients: int, batch_size: int, seconds: float
) -> tuple[int, list[float]]:
    """``clients`` loops posting batches back to back for ``seconds``: (accepted, POST times)."""
    stop = time.monotonic() + seconds
    accepted = 0
    durations: list[float] = []

    async def client(number: int) -> None:
        nonlocal accepted
        base = 10**7 * (number + 1)
        batch = 0
        while time.monotonic() < stop:
            messages = [payload(base + batch * batch_size + n) for n in range(batch_size)]
            started = time.perf_counter()
            await service.enqueue(messages)
            durations.append(time.perf_counter() - started)
            accepted += len(messages)
            batch += 1

    await asyncio.gather(*(client(n) for n in range(clients)))
    return accepted, durations


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def main(args: argparse.Namespace) -> None:
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    async with start_sink(args.sink, install=not args.no_install) as sink:
        print(f"sink: {sink.kind} on 127.0.0.1:{sink.port}; {os.cpu_count()} CPUs", flush=True)
        async with Service.sqlite(sink, profile=args.profile) as service:
            await service.suspend()
            for b in range((args.backlog + 999) // 1000):
                await service.enqueue(make_batch(b, 1000, args.backlog))
            await service.activate()
            await asyncio.sleep(1.0)  # the dispatcher reaches full speed
            unloaded, unloaded_sent = await delivery_rate(service, args.seconds)
            measuring = asyncio.create_task(delivery_rate(service, args.seconds))
            accepted, posts = await enqueue_flood(
                service, args.clients, args.batch_size, args.seconds
            )
            loaded, loaded_sent = await measuring
            backlog_left = args.backlog - unloaded_sent - loaded_sent
        ratio = loaded / unloaded if unloaded else float("nan")
        verdict = "met" if ratio >= FLOOR else "NOT met"
        lines = [
            f"unloaded delivery: {unloaded:,.0f} msgs/s ({unloaded_sent:,} in {args.seconds:g} s)",
            f"delivery while {args.clients} clients post batches of {args.batch_size}: "
            f"{loaded:,.0f} msgs/s ({loaded_sent:,} in {args.seconds:g} s); enqueue accepted "
            f"{accepted / args.seconds:,.0f} msgs/s, POST p50 {percentile(posts, 0.5) * 1000:.0f}"
            f" ms, p99 {percentile(posts, 0.99) * 1000:.0f} ms",
            f"loaded / unloaded delivery: {ratio:.2f} [floor >= {FLOOR}: {verdict}]",
        ]
        if backlog_left <= 0:
            lines.append("warning: the backlog ran out during the measurement; raise --backlog")
        print("\nenqueue vs delivery (SQLite)")
        for line in lines:
            print(f"  {line}", flush=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--backlog", type=int, default=20_000, help="messages queued before measuring")
    add("--seconds", type=float, default=15.0, help="length of each measurement window")
    add("--clients", type=int, default=20, help="enqueue clients of the loaded window")
    add("--batch-size", type=int, default=100, help="messages per add_batch call")
    add("--sink", choices=("auto", "smtp-sink", "aiosmtpd"), default="auto", help="SMTP sink")
    add("--no-install", action="store_true", help="never install postfix for smtp-sink")
    add("--profile", type=Path, default=None, help="cProfile the serve process into DIR")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
