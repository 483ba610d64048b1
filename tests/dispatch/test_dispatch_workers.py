"""``mail-proxy worker`` processes sharing one PostgreSQL schema: exactly once, limits, crashes.

Each test starts ``mail-proxy serve`` in test mode (the API, no sending) on a private schema,
creates a tenant and one account per sink port, enqueues through the API, then starts workers
(real processes) that deliver to a counting aiosmtpd sink running in the test's event loop.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mailproxy_core.db.engine import Database
from mailproxy_core.testing.db import postgres_test_schema
from mailproxy_core.testing.live import free_port
from tests.dispatch.sink import CountingSink

pytestmark = pytest.mark.requires_plugins("smtp", "auth_token")

BIN = Path(sys.executable).parent / "mail-proxy"
TOKEN = "workers-token"
ACCOUNTS = ["a1", "a2", "a3", "a4"]


class Cluster:
    """A serve process (API only) and workers on one PostgreSQL schema."""

    def __init__(self, db_url: str, env: dict[str, str]) -> None:
        self.db_url = db_url
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("MAILPROXY_", "GMP_"))},
            "MAILPROXY_DB": db_url,
            "MAILPROXY_API_TOKEN": TOKEN,
            "MAILPROXY_LOG_LEVEL": "WARNING",
            "MAILPROXY_MAX_PER_ACCOUNT": "3",
            "MAILPROXY_SMTP__MAX_CONNECTIONS": "3",
            **env,
        }
        self.processes: list[asyncio.subprocess.Process] = []
        self.db = Database.from_setting(db_url, pool_max_size=2)
        self.client: httpx.AsyncClient | None = None

    async def start_serve(self, *, test_mode: bool = True) -> asyncio.subprocess.Process:
        """Start ``serve`` (API only in test mode, else sending too) and wait for ``/health``."""
        port = free_port()
        env = {**self.env, "MAILPROXY_TEST_MODE": "1" if test_mode else "0"}
        process = await _spawn("serve", {**env, "MAILPROXY_PORT": str(port)})
        self.processes.append(process)
        if self.client is not None:
            await self.client.aclose()
        self.client = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers={"X-API-Token": TOKEN}, timeout=60
        )
        for _ in range(300):
            try:
                if (await self.client.get("/health")).status_code == 200:
                    break
            except httpx.TransportError:
                await asyncio.sleep(0.1)
        await self.db.connect()
        return process

    async def start_worker(self, **env: str) -> asyncio.subprocess.Process:
        process = await _spawn("worker", {**self.env, "MAILPROXY_TEST_MODE": "0", **env})
        self.processes.append(process)
        return process

    async def post(self, path: str, **body: Any) -> Any:
        assert self.client is not None
        response = await self.client.post(path, json=body)
        assert response.status_code == 200, response.text
        return response.json()

    async def setup(self, sink: CountingSink) -> None:
        await self.post("/tenants/add", id="acme", name="Acme")
        for name in sink.names:
            await self.post(
                "/accounts/add",
                id=name,
                tenant_id="acme",
                host="127.0.0.1",
                port=sink.ports[name],
                use_tls=False,
            )

    async def enqueue(
        self,
        count: int,
        *,
        priority: int | str = 2,
        prefix: str = "m",
        accounts: tuple[str, ...] = tuple(ACCOUNTS),
    ) -> None:
        ids = [f"{prefix}{n:05d}" for n in range(count)]
        for start in range(0, count, 1000):
            chunk = [
                {
                    "id": mid,
                    "tenant_id": "acme",
                    "account_id": accounts[n % len(accounts)],
                    "from": "shop@acme.example",
                    "to": f"c{n}@example.com",
                    "subject": f"Order {mid}",
                    "body": "Thanks.",
                    "priority": priority,
                }
                for n, mid in enumerate(ids[start : start + 1000], start)
            ]
            result = await self.post("/messages/add_batch", messages=chunk)
            assert result["queued"] == len(chunk), result

    async def count(self, where: str) -> int:
        return int(await self.db.fetch_val(f"SELECT count(*) FROM messages WHERE {where}"))

    async def wait_for(self, where: str, expected: int, within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        while (found := await self.count(where)) < expected:
            for process in self.processes:
                assert process.returncode in (None, 0, -signal.SIGKILL), "a process died"
            assert time.monotonic() < deadline, f"only {found} of {expected} where {where}"
            await asyncio.sleep(0.1)

    async def close(self) -> None:
        for process in self.processes:
            if process.returncode is None:
                process.kill()
            await process.wait()
        if self.client is not None:
            await self.client.aclose()
        await self.db.disconnect()


async def _spawn(command: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        str(BIN), command, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=None
    )


@pytest.fixture
async def sink() -> AsyncIterator[CountingSink]:
    counting = await CountingSink(ACCOUNTS, data_delay=0.002).start()
    yield counting
    await counting.stop()


@pytest.fixture
async def cluster(request: pytest.FixtureRequest) -> AsyncIterator[Cluster]:
    env = getattr(request, "param", {})
    async with postgres_test_schema() as url:
        running = Cluster(url, env)
        try:
            await running.start_serve()
            yield running
        finally:
            await running.close()


async def test_two_workers_deliver_each_message_exactly_once(cluster, sink):
    await cluster.setup(sink)
    await cluster.enqueue(2000)
    await cluster.start_worker()
    await cluster.start_worker()
    await cluster.wait_for("status = 'sent'", 2000)
    assert await cluster.count("status <> 'sent'") == 0
    assert len(sink.delivered) == 2000
    assert set(sink.delivered.values()) == {1}  # exactly once
    assert all(sink.peak[name] <= 3 for name in ACCOUNTS), sink.peak  # per-account limit


@pytest.mark.parametrize("cluster", [{"MAILPROXY_LEASE_SECONDS": "2"}], indirect=True)
async def test_killed_worker_loses_nothing(cluster, sink):
    await cluster.setup(sink)
    await cluster.enqueue(800)
    victim = await cluster.start_worker()
    await cluster.start_worker()
    await cluster.wait_for("status = 'sent'", 150)
    victim.send_signal(signal.SIGKILL)
    await victim.wait()
    # What the victim held: sends in flight or done but unrecorded, and claimed ahead.
    held = await cluster.count(f"status = 'sending' AND lease_owner LIKE '%:{victim.pid}:%'")
    await cluster.wait_for("status = 'sent'", 800, within=90)
    assert len(sink.delivered) == 800  # none lost
    duplicates = sum(n - 1 for n in sink.delivered.values())
    assert duplicates <= held


@pytest.mark.parametrize(
    "cluster",
    [{"MAILPROXY_MAX_PER_ACCOUNT": "10", "MAILPROXY_SMTP__MAX_CONNECTIONS": "10"}],
    indirect=True,
)
async def test_sigterm_drains_in_flight_sends_and_releases_leases(cluster):
    slow = await CountingSink(["a1"], data_delay=1.5).start()
    try:
        await cluster.post("/tenants/add", id="acme", name="Acme")
        await cluster.post(
            "/accounts/add", id="a1", tenant_id="acme", host="127.0.0.1",
            port=slow.ports["a1"], use_tls=False,
        )  # fmt: skip
        await cluster.enqueue(40, accounts=("a1",))
        worker = await cluster.start_worker(MAILPROXY_DRAIN_TIMEOUT="5")
        deadline = time.monotonic() + 30
        while slow.open["a1"] < 10:  # the worker's 10 send slots are all in DATA
            assert time.monotonic() < deadline, "sends never started"
            await asyncio.sleep(0.05)
        in_flight = slow.started
        worker.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(worker.wait(), timeout=10)
        assert code == 0
        assert len(slow.delivered) >= in_flight  # the sends in flight finished
        sent = await cluster.count("status = 'sent'")
        assert sent == len(slow.delivered)
        assert await cluster.count("status = 'sending' OR lease_owner IS NOT NULL") == 0
        registered = "SELECT count(*) FROM dispatch_processes WHERE pid = :pid"
        assert await cluster.db.fetch_val(registered, {"pid": worker.pid}) == 0  # left the registry
        assert await cluster.count("status = 'pending' AND lease_until IS NULL") == 40 - sent
    finally:
        await slow.stop()


@pytest.mark.parametrize("cluster", [{"MAILPROXY_SEND_LOOP_INTERVAL": "3600"}], indirect=True)
async def test_immediate_message_wakes_a_worker_in_another_process(cluster, sink):
    await cluster.setup(sink)
    await cluster.start_worker()
    deadline = time.monotonic() + 30
    listening = (
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN %mailproxy_dispatch%'"
    )
    while not await cluster.db.fetch_val(listening):  # then idle until its poll an hour away
        assert time.monotonic() < deadline, "the worker never listened"
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)
    await cluster.enqueue(1, priority="immediate", prefix="urgent")
    deadline = time.monotonic() + 30
    while "urgent00000" not in sink.delivered:
        assert time.monotonic() < deadline, "the worker was not woken"
        await asyncio.sleep(0.05)
