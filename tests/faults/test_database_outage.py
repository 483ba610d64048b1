"""A PostgreSQL cluster stopped for ~10 s under load, then started again.

The database is a throw-away cluster (``initdb``/``pg_ctl`` on a free loopback port, never the
machine's own server). While it is away: every API call answers 503 ``database_unavailable`` with
``Retry-After`` (never 500, never a hang), ``/health`` stays 200 and ``/health/ready`` says 503,
the log stays bounded (a few lines per outage, not per failed call). Afterwards: ready again, and
every message the API accepted is delivered.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.faults.harness import Api, ClientApp, Proc, Sink, base_env, free_port, message, until
from tests.pgcluster import throwaway_cluster

pytestmark = pytest.mark.requires_plugins("smtp", "auth_token", "reporter_http")

OUTAGE_SECONDS = 10.0
MAX_LINES_PER_OUTAGE_SECOND = 2.0
"""Bound on the service's log while the database is away: one WARNING per loop, not per call."""


class Load:
    """Posts one message every 50 ms and lists tenants, recording each answer's status."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.statuses: list[tuple[float, str, int]] = []
        self.accepted: list[str] = []
        self.hangs = 0
        self._n = 0

    async def run(self) -> None:
        while True:
            self._n += 1
            mid = f"o{self._n:05d}"
            started = time.monotonic()
            try:
                answer = await self.api.post("/messages/add", message(mid))
                self.statuses.append((started, "add", answer.status_code))
                if answer.status_code == 200:
                    self.accepted.append(mid)
                elif answer.status_code == 503:
                    assert answer.headers["Retry-After"] == "5"
                    assert answer.json()["code"] == "database_unavailable"
                listed = await self.api.client.get("/tenants/list")
                self.statuses.append((started, "list", listed.status_code))
            except httpx.TimeoutException:
                self.hangs += 1
            await asyncio.sleep(0.05)


async def test_postgresql_stopped_under_load(tmp_path: Path, sink: Sink, client_app: ClientApp):
    with throwaway_cluster() as cluster:
        env = base_env(
            cluster.url,
            tmp_path,
            MAILPROXY_PORT=str(free_port()),
            MAILPROXY_REPORT_INTERVAL="1",
            MAILPROXY_RETRY_DELAYS="1",
        )
        serve = await Proc("serve", env, tmp_path / "serve.log").start()
        api = Api(serve.url)
        load = Load(api)
        runner: asyncio.Task[None] | None = None
        try:
            await api.setup_tenant(client_app, sink)
            assert (await api.client.get("/health/ready")).status_code == 200
            runner = asyncio.create_task(load.run())
            await asyncio.sleep(2.0)
            lines_before = len(serve.log_lines())
            await asyncio.to_thread(cluster.stop)
            stopped = time.monotonic()
            await asyncio.sleep(1.0)
            ready = await api.client.get("/health/ready")
            assert ready.status_code == 503 and ready.headers["Retry-After"] == "5"
            assert (await api.client.get("/health")).status_code == 200
            await asyncio.sleep(OUTAGE_SECONDS - (time.monotonic() - stopped))
            restarting = time.monotonic()  # the cluster accepts before pg_ctl returns
            await asyncio.to_thread(cluster.start)
            started = time.monotonic()
            outage_lines = serve.log_lines()[lines_before:]
            outage_seconds = started - stopped

            async def ready_again() -> bool:
                return (await api.client.get("/health/ready")).status_code == 200

            ready_after = await until(ready_again, 30, "/health/ready 200 after the restart")
            await asyncio.sleep(2.0)  # some load after the restart
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
            accepted = list(load.accepted)
            await until(
                lambda: all(mid in sink.delivered for mid in accepted),
                60,
                "every accepted message delivered",
            )
            delivered_after = time.monotonic() - started
        finally:
            if runner is not None:
                runner.cancel()
                await asyncio.gather(runner, return_exceptions=True)
            await api.aclose()
            serve.stop()

    during = Counter(
        (what, status) for when, what, status in load.statuses if stopped + 0.5 < when < restarting
    )
    every = Counter(status for _when, _what, status in load.statuses)
    assert load.hangs == 0, f"{load.hangs} calls got no answer within 15 s"
    assert set(every) <= {200, 503}, every  # never a 500
    assert during and {status for _what, status in during} == {503}, during
    assert not [line for line in outage_lines if "Traceback" in line], "\n".join(outage_lines)
    # no ERROR either (an outage is a WARNING), from the kernel or any plugin's loop
    assert not [line for line in outage_lines if " ERROR " in line], "\n".join(outage_lines)
    per_second = len(outage_lines) / outage_seconds
    assert per_second <= MAX_LINES_PER_OUTAGE_SECOND, "\n".join(outage_lines)
    lost = [mid for mid in accepted if mid not in sink.delivered]
    assert not lost
    print(
        f"\nFIGURES postgresql-outage: {outage_seconds:.1f} s away, answers during {dict(during)}, "
        f"all answers {dict(every)}, hangs 0, log lines {len(outage_lines)} "
        f"({per_second:.2f}/s), ready {ready_after:.1f} s after the restart, "
        f"{len(accepted)} accepted, all delivered within {delivered_after:.1f} s of the restart "
        f"(2 s of it more load), lost 0, duplicates {sink.duplicates}"
    )
    print("\n".join(outage_lines))
