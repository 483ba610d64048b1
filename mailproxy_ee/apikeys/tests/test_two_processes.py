"""Two ``mail-proxy serve`` processes on one PostgreSQL database: a key replaced or revoked
through one is refused by the other on its next request (no stale cache)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from mailproxy_core.testing.db import postgres_test_schema, require_postgres
from mailproxy_core.testing.live import free_port
from mailproxy_core.testing.plugin import ADMIN_TOKEN

BIN = Path(sys.executable).parent / "mail-proxy"
ADMIN = {"X-API-Token": ADMIN_TOKEN}


@pytest_asyncio.fixture
async def pg_url() -> AsyncIterator[str]:
    await require_postgres()
    async with postgres_test_schema() as url:
        yield url


def start(url: str, tmp_path: Path, name: str) -> tuple[str, subprocess.Popen[str]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILPROXY_", "GMP_"))}
    env.update(
        MAILPROXY_DB=url,
        MAILPROXY_API_TOKEN=ADMIN_TOKEN,
        MAILPROXY_TEST_MODE="1",
        MAILPROXY_LOG_LEVEL="WARNING",
    )
    proc = subprocess.Popen(
        [str(BIN), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{name} exited early: {proc.communicate()}")
        try:
            if httpx.get(f"{base}/health", timeout=1.0).status_code == 200:
                return base, proc
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"{name} did not become ready: {proc.communicate()}")


@pytest.fixture
def two_servers(pg_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    procs: list[subprocess.Popen[str]] = []
    try:
        first, proc = start(pg_url, tmp_path, "first")
        procs.append(proc)
        second, proc = start(pg_url, tmp_path, "second")
        procs.append(proc)
        yield first, second
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()


def test_replacement_and_revocation_reach_every_process(two_servers: tuple[str, str]) -> None:
    first, second = two_servers
    created = httpx.post(f"{first}/tenants/add", json={"id": "acme"}, headers=ADMIN)
    assert created.status_code == 200, created.text
    old = created.json()["api_key"]
    scoped = httpx.post(
        f"{first}/api_keys/add",
        json={"tenant_id": "acme", "name": "ci", "scopes": ["read"]},
        headers=ADMIN,
    ).json()["api_key"]

    def status(base: str, key: str) -> int:
        return httpx.get(f"{base}/tenants/get", headers={"X-API-Token": key}).status_code

    assert status(second, old) == 200 and status(second, scoped) == 200

    replaced = httpx.post(
        f"{first}/tenants/create_api_key", json={"tenant_id": "acme"}, headers=ADMIN
    )
    new = replaced.json()["api_key"]
    assert status(second, old) == 401
    assert status(second, new) == 200

    revoked = httpx.post(
        f"{second}/api_keys/revoke", json={"name": "ci"}, headers={"X-API-Token": new}
    )
    assert revoked.status_code == 200, revoked.text
    assert status(first, scoped) == 401

    httpx.post(f"{second}/tenants/revoke_api_key", json={"tenant_id": "acme"}, headers=ADMIN)
    assert status(first, new) == 401
