"""Pieces of ``throughput.py``: SMTP sinks, service processes, messages and measurements.

Not a benchmark of its own. Run as a script it is the aiosmtpd sink process::

    python benchmarks/throughput_support.py sink --port 2525 [--record]

which accepts every message and, with ``--record``, prints ``<unix time> <X-Genro-Mail-ID>`` for
each one as it is accepted (the timing sink of the latency phase).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from mailproxy_core.db.engine import Database
from mailproxy_core.models import Message
from mailproxy_core.testing.db import drop_schema, url_with_schema

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent / "mail-proxy"
TOKEN = "bench-admin-token"
TENANT = "bench"
BULK_ACCOUNT = "main"
BODY = (
    "Dear customer,\n\nthank you for your order. Your invoice is attached to your account page "
    "and the goods will ship within two working days. Reply to this message if anything is "
    "missing or wrong; our support team answers within one working day.\n\nKind regards,\n"
    "The Example Shop team\n"
) * 2
SERVICE_ENV = {
    # One account carries the whole load: let it use the 10 connections of the raw measurement
    # and claim ahead of them (the per-account limit counts claimed messages).
    "MAILPROXY_MAX_PER_ACCOUNT": "50",
    "MAILPROXY_SMTP__MAX_CONNECTIONS": "10",
    "MAILPROXY_LOG_LEVEL": "WARNING",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def peak_rss_kb(pid: int) -> int:
    """``VmHWM`` (peak resident set size) of process ``pid``, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM in /proc/{pid}/status")


# -- messages --------------------------------------------------------------------------------


def payload(number: int, account: str = BULK_ACCOUNT) -> dict[str, Any]:
    """One distinct message of about 1 KB, as a client posts it."""
    message: dict[str, Any] = {
        "id": f"order-{number:08d}",
        "tenant_id": TENANT,
        "account_id": account,
        "from": "Example Shop <noreply@shop.example.com>",
        "to": [f"Customer {number} <customer{number}@mail.example.org>"],
        "subject": f"Your order #{number} has been confirmed",
        "body": BODY,
        "priority": (1, 2, 2, 3)[number % 4],
        "batch_code": f"campaign-{number % 5}",
        "headers": {"X-Order": str(number)},
    }
    if number % 10 == 0:
        message["cc"] = "archive@shop.example.com"
    return message


def make_batch(batch: int, size: int, total: int) -> list[dict[str, Any]]:
    """Messages ``batch * size`` up to ``(batch + 1) * size`` (fewer at ``total``)."""
    return [payload(n) for n in range(batch * size, min((batch + 1) * size, total))]


def bench_message(number: int) -> Message:
    """The ``Message`` the dispatcher would hold for ``payload(number)``."""
    return Message(
        pk=number + 1,
        tenant_id=TENANT,
        id=f"order-{number:08d}",
        account_id=BULK_ACCOUNT,
        status="sending",
        priority=2,
        payload=payload(number),
    )


# -- sinks -----------------------------------------------------------------------------------


@dataclass
class Sink:
    """A running SMTP sink process."""

    kind: str
    port: int
    process: asyncio.subprocess.Process
    seen: dict[str, float] = field(default_factory=dict)
    _reader: asyncio.Task[None] | None = None

    async def arrivals(self, ids: set[str], within: float) -> dict[str, float]:
        """When each of ``ids`` was accepted (a recording sink); fails after ``within`` s."""
        deadline = time.monotonic() + within
        while not ids <= self.seen.keys():
            if time.monotonic() > deadline:
                missing = len(ids - self.seen.keys())
                raise RuntimeError(f"{missing} timed messages never reached the sink")
            await asyncio.sleep(0.05)
        return {mid: self.seen[mid] for mid in ids}

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            stamp, _, mid = line.decode().strip().partition(" ")
            if mid:
                self.seen[mid] = float(stamp)


def ensure_smtp_sink(install: bool) -> str | None:
    """Path of Postfix's ``smtp-sink``, installing ``postfix`` (root on Debian) when allowed."""
    found = shutil.which("smtp-sink")
    if found or not install or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    print("installing postfix for smtp-sink (non-interactive) ...", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(
        ["debconf-set-selections"],
        input="postfix postfix/main_mailer_type select No configuration\n",
        text=True,
        check=False,
    )
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "postfix"]):
        try:
            subprocess.run(command, env=env, capture_output=True, timeout=240, check=False)
        except subprocess.TimeoutExpired:
            return None
    return shutil.which("smtp-sink")


@asynccontextmanager
async def start_sink(kind: str, *, install: bool, record: bool = False) -> AsyncIterator[Sink]:
    """An SMTP sink on a free loopback port: ``smtp-sink`` or the aiosmtpd process."""
    port = free_port()
    smtp_sink = ensure_smtp_sink(install) if kind in ("auto", "smtp-sink") and not record else None
    if kind == "smtp-sink" and smtp_sink is None:
        raise SystemExit("smtp-sink is not installed (apt-get install postfix)")
    if smtp_sink is not None:
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        command = [smtp_sink, "-a", *user, "-m", "1000", f"127.0.0.1:{port}", "1024"]
        name = "postfix smtp-sink"
    else:
        command = [sys.executable, __file__, "sink", "--port", str(port)]
        command += ["--record"] if record else []
        name = "aiosmtpd sink process"
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    sink = Sink(name, port, process)
    sink._reader = asyncio.create_task(sink._read())
    try:
        await wait_for_port(port, process)
        yield sink
    finally:
        process.terminate()
        await process.wait()
        sink._reader.cancel()


async def wait_for_port(port: int, process: asyncio.subprocess.Process) -> None:
    for _ in range(200):
        if process.returncode is not None:
            raise RuntimeError(f"sink exited with {process.returncode}")
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return
    raise RuntimeError(f"nothing listens on port {port}")


def run_aiosmtpd_sink(port: int, record: bool) -> None:
    """The aiosmtpd sink process (``sink`` sub-command)."""
    from aiosmtpd.smtp import SMTP

    mail_id = re.compile(rb"^X-Genro-Mail-ID: *(\S+)", re.MULTILINE | re.IGNORECASE)

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            if record:
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


# -- the service -----------------------------------------------------------------------------


class Service:
    """``mail-proxy serve`` (and optionally workers) on one database, with an API client."""

    def __init__(self, db: str, env: dict[str, str]) -> None:
        self.db = db
        self.env = env
        self.url = ""
        self.pids: list[int] = []
        self.worker_pids: list[int] = []
        self._processes: list[asyncio.subprocess.Process] = []
        self._drains: list[asyncio.Task[None]] = []
        self.client: httpx.AsyncClient | None = None
        self.database = Database.from_setting(db, pool_max_size=2)

    @classmethod
    @asynccontextmanager
    async def sqlite(
        cls, sink: Sink, *, profile: Path | None = None, urgent_sink: Sink | None = None
    ) -> AsyncIterator[Service]:
        """``serve`` on a fresh SQLite file, dispatcher running, accounts on the sinks."""
        with tempfile.TemporaryDirectory(prefix="mp-throughput-") as directory:
            service = cls(str(Path(directory) / "bench.db"), {"MAILPROXY_TEST_MODE": "0"})
            async with service.running(sink, profile=profile, urgent_sink=urgent_sink):
                yield service

    @classmethod
    @asynccontextmanager
    async def postgres(cls, sink: Sink, db_url: str) -> AsyncIterator[Service]:
        """``serve`` in test mode (API only) on a PostgreSQL schema; add workers to send."""
        service = cls(db_url, {"MAILPROXY_TEST_MODE": "1"})
        async with service.running(sink):
            yield service

    @asynccontextmanager
    async def running(
        self, sink: Sink, *, profile: Path | None = None, urgent_sink: Sink | None = None
    ) -> AsyncIterator[None]:
        port = free_port()
        self.env = {
            **os.environ,
            **SERVICE_ENV,
            **self.env,
            "MAILPROXY_DB": self.db,
            "MAILPROXY_API_TOKEN": TOKEN,
            "MAILPROXY_HOST": "127.0.0.1",
            "MAILPROXY_PORT": str(port),
            "MAILPROXY_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode(),
        }
        command = [sys.executable]
        if profile is not None:
            command += ["-m", "cProfile", "-o", str(profile / "serve.prof")]
        command += [str(BIN), "serve"]
        process = await asyncio.create_subprocess_exec(
            *command, env=self.env, cwd=ROOT, stderr=asyncio.subprocess.DEVNULL
        )
        self._processes.append(process)
        self.pids.append(process.pid)
        self.url = f"http://127.0.0.1:{port}"
        try:
            async with httpx.AsyncClient(
                base_url=self.url, headers={"X-API-Token": TOKEN}, timeout=120.0
            ) as self.client:
                await self._wait_until_up(process)
                await self.database.connect()
                await self._setup(sink, urgent_sink)
                yield
        finally:
            await self.database.disconnect()
            await self._stop()

    async def _wait_until_up(self, process: asyncio.subprocess.Process) -> None:
        assert self.client is not None
        for _ in range(300):
            if process.returncode is not None:
                raise RuntimeError(f"mail-proxy serve exited with {process.returncode}")
            try:
                if (await self.client.get("/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
        raise RuntimeError(f"mail-proxy serve did not answer at {self.url}")

    async def _setup(self, sink: Sink, urgent_sink: Sink | None) -> None:
        await self.post("/tenants/add", {"id": TENANT, "name": "Benchmark"})
        accounts = [(BULK_ACCOUNT, sink)] + ([("urgent", urgent_sink)] if urgent_sink else [])
        for account_id, target in accounts:
            await self.post(
                "/accounts/add",
                {
                    "id": account_id,
                    "tenant_id": TENANT,
                    "host": "127.0.0.1",
                    "port": target.port,
                    "use_tls": False,
                },
            )

    async def start_workers(self, count: int) -> None:
        """Start ``count`` ``mail-proxy worker`` processes (dispatcher running)."""
        env = {**self.env, "MAILPROXY_TEST_MODE": "0", "MAILPROXY_LOG_LEVEL": "INFO"}
        for _ in range(count):
            process = await asyncio.create_subprocess_exec(
                str(BIN), "worker", env=env, cwd=ROOT, stderr=asyncio.subprocess.PIPE
            )
            self._processes.append(process)
            self.worker_pids.append(process.pid)
            assert process.stderr is not None
            while b"connected to database" not in await process.stderr.readline():
                if process.returncode is not None:
                    raise RuntimeError("mail-proxy worker exited early")
            self._drains.append(asyncio.create_task(_drain(process.stderr)))
        await asyncio.sleep(1.0)  # migrations checked, dispatcher task started

    async def _stop(self) -> None:
        for process in reversed(self._processes):
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in self._processes:
            try:
                await asyncio.wait_for(process.wait(), timeout=30)
            except TimeoutError:
                process.kill()
                await process.wait()
        for drain in self._drains:
            drain.cancel()

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        assert self.client is not None
        response = await self.client.post(path, json=body)
        if response.status_code != 200:
            raise RuntimeError(f"{path}: {response.status_code} {response.text[:300]}")
        return response.json()

    async def enqueue(self, batch: list[dict[str, Any]]) -> None:
        result = await self.post("/messages/add_batch", {"messages": batch})
        if result["queued"] != len(batch):
            raise RuntimeError(f"only {result['queued']} of {len(batch)} queued")

    async def add(self, message: dict[str, Any]) -> None:
        await self.post("/messages/add", message)

    async def suspend(self) -> None:
        await self.post("/instance/suspend", {"tenant_id": TENANT})

    async def activate(self) -> None:
        await self.post("/instance/activate", {"tenant_id": TENANT})


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


async def count_sent(service: Service) -> int:
    """Messages sent so far: the ``sent`` events (every benchmark message is sent once).

    Counted in ``message_events``, which holds only what was attempted, rather than by status
    in ``messages``: with 100,000 queued, a ``count(*)`` over ``messages`` every 20 ms scans the
    whole table and would slow the service it measures (same two cores).
    """
    query = "SELECT count(*) FROM message_events WHERE event_type = 'sent'"
    return int(await service.database.fetch_val(query))


async def wait_until_sent(
    service: Service, count: int, samples: list[tuple[float, int]], within: float
) -> None:
    """Poll the sent count every 20 ms into ``samples`` until it reaches ``count``."""
    deadline = time.monotonic() + max(within, 60.0)
    while True:
        sent = await count_sent(service)
        samples.append((time.perf_counter(), sent))
        if sent >= count:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {sent} of {count} messages sent in time")
        await asyncio.sleep(0.02)


def steady_rate(samples: list[tuple[float, int]], window: int) -> float:
    """Msgs/s between the samples where 10 % and 90 % of ``window`` had been sent."""
    low = next(s for s in samples if s[1] >= window * 0.1)
    high = next(s for s in samples if s[1] >= window * 0.9)
    if high[0] <= low[0]:
        return float("nan")
    return (high[1] - low[1]) / (high[0] - low[0])


@asynccontextmanager
async def postgres_schema(server_url: str) -> AsyncIterator[str]:
    """A URL on a fresh schema of ``server_url``, dropped afterwards."""
    schema = f"mp_bench_{uuid.uuid4().hex[:12]}"
    try:
        yield url_with_schema(server_url, schema)
    finally:
        await drop_schema(server_url, schema)


# -- the attachment benchmarks (attachments.py, attachments_s3.py) ---------------------------

ATTACHMENT_PHASES = ("plain", "cold", "warm", "shared")
"""No attachment; distinct files (every fetch misses); the same files again (every fetch hits);
one file shared by every message."""


class BenchFiles:
    """The attachment files of a benchmark: ``size`` bytes, distinct per number."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._block = hashlib.sha256(b"mail-proxy").digest() * (size // 32 + 1)

    def content(self, number: int) -> bytes:
        prefix = f"%PDF-1.4 file {number}\n".encode()
        return prefix + self._block[: self.size - len(prefix)]

    def md5(self, number: int) -> str:
        return hashlib.md5(self.content(number)).hexdigest()


def attachment_message(
    phase: str, number: int, attachment: dict[str, Any] | None
) -> dict[str, Any]:
    """Message ``<phase>-<number>`` of the bulk account, with ``attachment`` when given."""
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


def attachment_phases(
    count: int, spec: Callable[[int], dict[str, Any]]
) -> list[tuple[str, list[dict[str, Any]]]]:
    """The messages of each of ``ATTACHMENT_PHASES``; ``spec(n)`` is the attachment of file n
    (the shared phase uses file ``count``, never used before)."""
    return [
        ("plain", [attachment_message("plain", n, None) for n in range(count)]),
        ("cold", [attachment_message("cold", n, spec(n)) for n in range(count)]),
        ("warm", [attachment_message("warm", n, spec(n)) for n in range(count)]),
        ("shared", [attachment_message("shared", n, spec(count)) for n in range(count)]),
    ]


async def run_suspended_phase(
    service: Service, phase: str, messages: list[dict[str, Any]], already: int, within: float
) -> float:
    """Enqueue ``messages`` while the tenant is suspended, activate it and time until every one
    is sent (``already`` were sent before); msgs/s."""
    await service.suspend()
    for start in range(0, len(messages), 500):
        await service.enqueue(messages[start : start + 500])
    started = time.perf_counter()
    await service.activate()
    target = already + len(messages)
    deadline = time.monotonic() + within
    while await count_sent(service) < target:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{phase}: not every message was sent in time")
        await asyncio.sleep(0.02)
    return len(messages) / (time.perf_counter() - started)


async def run_attachment_phases(
    service: Service,
    phases: list[tuple[str, list[dict[str, Any]]]],
    selected: str,
    fetches: Callable[[], int],
    *,
    within: float,
    width: int,
) -> None:
    """Run the ``selected`` phases (comma-separated) in order with ``run_suspended_phase``; after
    each, print msgs/s, the fetches the file source counted (``fetches()``, in a column ``width``
    wide) and the peak RSS of the service."""
    sent = 0
    for phase, batch in phases:
        if phase not in selected.split(","):
            continue
        before = fetches()
        rate = await run_suspended_phase(service, phase, batch, sent, within)
        sent += len(batch)
        rss = peak_rss_kb(service.pids[0]) / 1024
        print(f"{phase:8} {rate:8.0f} {fetches() - before:{width}d} {rss:12.0f}")


def attachment_arguments(description: str) -> argparse.ArgumentParser:
    """The command line shared by the attachment benchmarks."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--size", type=int, default=200 * 1024)
    parser.add_argument("--sink", choices=("auto", "smtp-sink", "aiosmtpd"), default="auto")
    parser.add_argument("--no-install", action="store_true", help="never apt-get postfix")
    parser.add_argument("--phases", default=",".join(ATTACHMENT_PHASES))
    return parser


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="aiosmtpd sink for the throughput benchmark")
    parser.add_argument("mode", choices=["sink"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--record", action="store_true")
    arguments = parser.parse_args()
    run_aiosmtpd_sink(arguments.port, arguments.record)
