"""The example receipt handler of docs/plugins.md, end to end on SQLite and PostgreSQL.

A message goes out through a real SMTP server; a receipt file naming its Message-ID is dropped in
the handler's directory; the receipt becomes a ``bounce`` event in the message's history (status
unchanged) and a report entry POSTed to a real client application; reading the file again adds
nothing; and with a second ``serve`` process on the same PostgreSQL database only one process
reads it, until the first one stops and the second takes over.
"""

from __future__ import annotations

import asyncio
import email
import importlib.metadata
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

import mailproxy_example_receipts as receipts_plugin
from mailproxy_core import MailProxy, Settings
from mailproxy_core.testing.client import ApiClient
from mailproxy_core.testing.dispatch import dispatch_now
from mailproxy_core.testing.live import free_port as _free_port
from mailproxy_core.testing.plugin import ADMIN_TOKEN
from mailproxy_core.testing.smtp import ScriptedServer
from mailproxy_example_receipts.handler import read_log

pytestmark = pytest.mark.requires_plugins("smtp", "reporter_http")

INSTALLED = any(
    ep.name == "example_receipts" for ep in importlib.metadata.entry_points(group="mailproxy")
)
SECOND_PROCESS = Path(__file__).resolve().parent / "second_process.py"


@pytest.fixture(autouse=True)
def _example_plugin(register_plugin: Any) -> None:
    # Installed (the tox env "example_receipts"): discovered through its entry point.
    if not INSTALLED:
        register_plugin(receipts_plugin, name="example_receipts")


@pytest.fixture
def receipts_dir(tmp_path: Path) -> Path:
    path = tmp_path / "receipts"
    path.mkdir()
    return path


@pytest.fixture
def client_app() -> Iterator[Callable[..., Any]]:
    """Factory: ``client_app()`` starts a recording client application; stopped afterwards."""
    testing = pytest.importorskip("mailproxy_reporter_http.testing")
    apps: list[Any] = []

    def start(**attributes: Any) -> Any:
        app = testing.ClientApp(**attributes).start()
        apps.append(app)
        return app

    yield start
    for app in apps:
        app.stop()


@pytest.fixture
def test_mode() -> bool:
    return False


@pytest.fixture
def mp_settings(db_url: str, receipts_dir: Path, test_mode: bool) -> Settings:
    return Settings.from_values(
        db=db_url,
        api_token=ADMIN_TOKEN,
        test_mode=test_mode,
        report_interval=0.2,
        send_loop_interval=0.05,
        plugin_sections={
            "smtp": {"local_hostname": "client.test", "connect_timeout": 2.0},
            "reporter_http": {"timeout": 5.0, "connect_timeout": 2.0},
            "example_receipts": {"directory": str(receipts_dir), "poll_interval": 0.2},
        },
    )


def test_example_receipts_is_installed(tmp_path: Path) -> None:
    if os.environ.get("MAILPROXY_EXPECT_EXAMPLE_RECEIPTS") != "1":
        pytest.skip("the example receipt handler is installed only in the tox env")
    from mailproxy_core.kernel import build_kernel

    mp = build_kernel(Settings.from_values(db=str(tmp_path / "mp.db")))
    info = {p.name: p for p in mp.plugins}["example_receipts"]
    assert info.status == "loaded" and info.distribution == "mailproxy-example-receipts"
    assert mp.registry.receipt_handlers.plugin_of("example_receipts") == "example_receipts"


def receipt_file(directory: Path, name: str, sent_message_id: str, own_id: str) -> None:
    (directory / name).write_bytes(
        (
            "From: MAILER-DAEMON@mx.example.com\r\n"
            "To: shop@acme.example\r\n"
            "Subject: Undelivered Mail Returned to Sender\r\n"
            f"Message-ID: {own_id}\r\n"
            f"In-Reply-To: {sent_message_id}\r\n"
            "X-Receipt-Type: bounce\r\n"
            "X-Receipt-Recipient: bob@example.com\r\n"
            "X-Bounce-Type: hard\r\n"
            "X-Bounce-Code: 5.1.1\r\n"
            "\r\n"
            "550 5.1.1 <bob@example.com>: User unknown\r\n"
        ).encode()
    )


async def until(condition: Callable[[], Any], within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def setup_tenant(client: ApiClient, smtp_port: int, client_url: str | None) -> None:
    tenant: dict[str, Any] = {"id": "acme"}
    if client_url:
        tenant["client_base_url"] = client_url
    assert (await client.post("/tenants/add", json=tenant)).status == 200
    account = await client.post(
        "/accounts/add", id="main", tenant_id="acme", host="127.0.0.1", port=smtp_port,
        use_tls=False,
    )  # fmt: skip
    assert account.status == 200, account.json
    queued = await client.post(
        "/messages/add",
        json={
            "id": "order-1",
            "tenant_id": "acme",
            "account_id": "main",
            "from": "Shop <shop@acme.example>",
            "to": "bob@example.com",
            "subject": "Your order",
            "body": "Thanks.",
        },
    )
    assert queued.status == 200, queued.json


async def history(client: ApiClient) -> dict[str, Any]:
    got = await client.get(
        "/messages/get", message_id="order-1", tenant_id="acme", include_history=True
    )
    assert got.status == 200, got.json
    return dict(got.json)


async def reads(mp: MailProxy) -> list[dict[str, Any]]:
    query = sa.select(read_log.c.file, read_log.c.outcome, read_log.c.pid).order_by(read_log.c.id)
    return [dict(row) for row in await mp.data.fetch_all(query)]


async def test_a_receipt_file_becomes_one_reported_event(
    mp_kernel: MailProxy,
    mp_client: ApiClient,
    smtp_server: Any,
    client_app: Any,
    receipts_dir: Path,
) -> None:
    server: ScriptedServer = await smtp_server()
    app = client_app()
    await setup_tenant(mp_client, server.port, app.url)
    await until(lambda: server.handler.messages)  # sent through the SMTP server
    sent_id = email.message_from_bytes(server.handler.messages[0].content)["Message-ID"]
    await until(lambda: any("sent_ts" in e for e in app.acknowledged_entries()))

    receipt_file(receipts_dir, "0001.eml", sent_id, "<dsn-1@mx.example.com>")

    async def bounced() -> bool:
        return (await history(mp_client))["history"][-1]["event_type"] == "bounce"

    await until(bounced)
    message = await history(mp_client)
    assert message["status"] == "sent"
    assert [e["event_type"] for e in message["history"]] == ["sent", "bounce"]
    bounce = message["history"][-1]
    assert bounce["description"] == "550 5.1.1 <bob@example.com>: User unknown"
    assert bounce["metadata"] == {
        "recipient": "bob@example.com",
        "bounce_type": "hard",
        "bounce_code": "5.1.1",
        "source_message_id": "<dsn-1@mx.example.com>",
    }

    def bounce_entries() -> list[dict[str, Any]]:
        return [e for e in app.acknowledged_entries() if "bounce_ts" in e]

    await until(bounce_entries)
    (entry,) = bounce_entries()
    assert entry == {
        "id": "order-1",
        "bounce_ts": bounce["event_ts"],
        "bounce_type": "hard",
        "bounce_code": "5.1.1",
        "bounce_reason": "550 5.1.1 <bob@example.com>: User unknown",
        "event_id": bounce["event_id"],
        "tenant_id": "acme",
    }

    # The handler keeps reading the same file (every 0.2 s): nothing is added.
    await until(lambda: _count(reads(mp_kernel), 4))
    outcomes = [row["outcome"] for row in await reads(mp_kernel)]
    assert outcomes[0] == "recorded" and set(outcomes[1:]) == {"duplicate"}
    assert [e["event_type"] for e in (await history(mp_client))["history"]] == ["sent", "bounce"]
    await asyncio.sleep(0.5)  # reports keep flowing (idle polls); no second bounce entry
    assert len(bounce_entries()) == 1
    status = mp_kernel.receipt_handler_status("example_receipts")
    assert status is not None and status.polling and status.last_error is None


async def _count(rows: Any, at_least: int) -> bool:
    return len(await rows) >= at_least


async def test_a_missing_directory_is_shown_as_the_handler_error(
    mp_kernel: MailProxy, receipts_dir: Path
) -> None:
    await asyncio.to_thread(receipts_dir.rmdir)

    def failed() -> bool:
        status = mp_kernel.receipt_handler_status("example_receipts")
        return status is not None and status.last_error is not None

    await until(failed)
    status = mp_kernel.receipt_handler_status("example_receipts")
    assert status is not None
    expected = f"FileNotFoundError: receipt directory {receipts_dir} does not exist"
    assert status.last_error == expected
    await asyncio.to_thread(receipts_dir.mkdir)
    await until(lambda: not failed())


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("test_mode", [True])
async def test_a_second_serve_process_does_not_read_the_receipts_again(
    mp_kernel: MailProxy,
    mp_client: ApiClient,
    smtp_server: Any,
    receipts_dir: Path,
    db_url: str,
    tmp_path: Path,
) -> None:
    server: ScriptedServer = await smtp_server()
    await setup_tenant(mp_client, server.port, None)
    await dispatch_now(mp_kernel)
    sent_id = email.message_from_bytes(server.handler.messages[0].content)["Message-ID"]
    await until(lambda: mp_kernel.receipt_handler_status("example_receipts").polling)  # type: ignore[union-attr]

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILPROXY_", "GMP_"))}
    env.update(
        MAILPROXY_DB=db_url,
        MAILPROXY_API_TOKEN=ADMIN_TOKEN,
        MAILPROXY_PORT=str(port),
        MAILPROXY_TEST_MODE="1",
        MAILPROXY_EXAMPLE_RECEIPTS__DIRECTORY=str(receipts_dir),
        MAILPROXY_EXAMPLE_RECEIPTS__POLL_INTERVAL="0.2",
    )
    log_path = tmp_path / "second.log"
    second = await asyncio.create_subprocess_exec(
        sys.executable, str(SECOND_PROCESS), env=env, cwd=tmp_path,
        stdout=subprocess.DEVNULL, stderr=await asyncio.to_thread(log_path.open, "w"),
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    headers = {"X-API-Token": ADMIN_TOKEN}
    try:
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=5.0) as http:

            async def ready() -> bool:
                assert second.returncode is None, await asyncio.to_thread(log_path.read_text)
                try:
                    return (await http.get("/health")).status_code == 200
                except httpx.TransportError:
                    return False

            await until(ready, within=60)
            receipt_file(receipts_dir, "0001.eml", sent_id, "<dsn-1@mx.example.com>")
            # run_now in the second process: the first one, which holds the lease, reads.
            assert (await http.post("/instance/run_now", json={})).status_code == 200
            await until(lambda: _count(reads(mp_kernel), 1))
            for _ in range(3):
                assert (await http.post("/instance/run_now", json={})).status_code == 200
                await mp_client.post("/instance/run_now", json={})
                await asyncio.sleep(0.3)
            rows = await reads(mp_kernel)
            assert {row["pid"] for row in rows} == {os.getpid()}, rows
            assert rows[0]["outcome"] == "recorded"

            # The first process stops polling (shutdown releases the lease): the second one
            # takes the handler over and reads; the receipt is still recorded only once.
            task = mp_kernel.background_tasks["receipts"]
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

            async def second_read() -> bool:
                await http.post("/instance/run_now", json={})
                return any(row["pid"] == second.pid for row in await reads(mp_kernel))

            await until(second_read, within=40)
            rows = await reads(mp_kernel)
            taken_over = [r["outcome"] for r in rows if r["pid"] == second.pid]
            assert taken_over[0] == "duplicate"
            events = [e["event_type"] for e in (await history(mp_client))["history"]]
            assert events == ["sent", "bounce"]
    finally:
        if second.returncode is None:
            second.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(second.wait(), 20)
        except TimeoutError:
            second.kill()
            await second.wait()
