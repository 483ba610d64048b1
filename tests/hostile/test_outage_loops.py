"""Every background loop keeps the log bounded while PostgreSQL is away, and says when it is back.

Each test runs the kernel on a throw-away PostgreSQL cluster (``tests/pgcluster.py``, never the
machine's own server), makes one loop retry many times a second, stops the cluster for a few
seconds and starts it again: the loop writes at most one WARNING (no ERROR, no traceback) for
the outage and one INFO when the database answers again. Before the fix each retry wrote a line
(a WARNING per reconnection attempt of the ``LISTEN`` connection, a traceback per round of the
receipt, retention and report-state loops).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from mailproxy_core import MailProxy, ReceiptHandlerSpec, Settings, hookimpl
from mailproxy_core.app import create_app, kernel_of
from mailproxy_core.db import notifications
from mailproxy_core.dispatch import receipts, report_state
from mailproxy_core.dispatch.report_state import Outcome, StateWriter
from mailproxy_core.testing.plugin import ADMIN_TOKEN, admin_token_plugins
from tests.hostile.conftest import running_service
from tests.pgcluster import Cluster, throwaway_cluster

OUTAGE_SECONDS = 3.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with throwaway_cluster() as made:
        yield made


@asynccontextmanager
async def kernel(
    cluster: Cluster, plugins: dict[str, object] | None = None, **values: Any
) -> AsyncIterator[MailProxy]:
    schema = f"loops_{uuid.uuid4().hex[:10]}"
    settings = Settings.from_values(
        db=f"{cluster.url}?schema={schema}", api_token=ADMIN_TOKEN, **values
    )
    app = create_app(settings, extra_plugins={**(plugins or {}), **admin_token_plugins()})
    async with app.test_app():
        yield kernel_of(app)


async def until(condition: Callable[[], bool], within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time; tasks:\n" + waits()
        await asyncio.sleep(0.05)


async def outage(cluster: Cluster) -> None:
    """Stop the cluster for ``OUTAGE_SECONDS`` and start it again."""
    await asyncio.to_thread(cluster.stop)
    await asyncio.sleep(OUTAGE_SECONDS)
    await asyncio.to_thread(cluster.start)


def waits() -> str:
    """Where each task of the loop waits: a failure shows which loop, if any, is stuck."""
    lines = []
    for task in asyncio.all_tasks():
        chain, awaited = [], task.get_coro()
        while awaited is not None:
            frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
            if frame is not None:
                chain.append(f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno}")
            awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
        lines.append(f"{task.get_name()}: {' > '.join(chain)}")
    return "\n".join(sorted(lines))


def lines_of(caplog: pytest.LogCaptureFixture, logger: str) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == logger]


def assert_bounded(records: list[logging.LogRecord]) -> None:
    """At most one WARNING, no ERROR, no traceback, and one INFO saying the database is back."""
    texts = [(r.levelname, r.getMessage()) for r in records]
    assert not [r for r in records if r.levelno >= logging.ERROR or r.exc_info], texts
    warnings = [r for r in records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, texts
    assert warnings[0].getMessage().startswith("database unavailable ("), texts
    assert [r for r in records if "available again" in r.getMessage()], texts


def back_again(caplog: pytest.LogCaptureFixture, logger: str) -> Callable[[], bool]:
    return lambda: any("available again" in r.getMessage() for r in lines_of(caplog, logger))


async def test_listen_connection_logs_an_outage_once(
    cluster: Cluster, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(notifications, "RECONNECT_DELAYS", (0.05,))  # ~60 attempts in 3 s
    async with kernel(cluster, test_mode=True) as mp:
        listener = mp.db.listener
        assert listener is not None and await listener.wait_connected(20)
        with caplog.at_level(logging.INFO, logger=notifications.log.name):
            await outage(cluster)
            await until(back_again(caplog, notifications.log.name))
            assert listener.connected
        assert_bounded(lines_of(caplog, notifications.log.name))


HANDLERS = ("alpha", "beta")


class IdleHandler:
    """A receipt handler with nothing to read."""

    poll_interval = 0.1

    def __init__(self, mp: MailProxy) -> None:
        self.polls = 0

    async def poll(self) -> None:
        self.polls += 1


class ReceiptsPlugin:
    @hookimpl
    def mailproxy_register_receipt_handlers(self) -> list[ReceiptHandlerSpec]:
        return [ReceiptHandlerSpec(name, IdleHandler) for name in HANDLERS]


async def test_receipt_loop_logs_an_outage_once(
    cluster: Cluster, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(receipts, "RENEW_EVERY", 0.1)  # both handlers retry the lease 10x/s
    async with kernel(cluster, {"receipts": ReceiptsPlugin()}, test_mode=False) as mp:
        loop = mp.receipt_loop
        assert loop is not None
        # Only this test's handlers: installed plugins may add their own (ee_bounce, pec), which
        # poll at their own, longer pace and would not poll again within the wait below.
        ours = [loop.states[name] for name in HANDLERS]
        await until(lambda: all(state.polls for state in ours))
        with caplog.at_level(logging.INFO, logger=receipts.log.name):
            await outage(cluster)
            await until(back_again(caplog, receipts.log.name))
            polls = [state.polls for state in ours]
            await until(lambda: all(s.polls > n for s, n in zip(ours, polls, strict=True)))
        assert_bounded(lines_of(caplog, receipts.log.name))


async def test_retention_loop_logs_an_outage_once(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    retention_log = "mailproxy_core.dispatch.retention"
    # report_interval 1 s: a retention round every second
    async with kernel(cluster, test_mode=False, report_interval=1) as mp:
        assert mp.background_tasks["report_retention"].done() is False
        with caplog.at_level(logging.INFO, logger=retention_log):
            await outage(cluster)
            await until(back_again(caplog, retention_log))
        assert_bounded(lines_of(caplog, retention_log))


async def test_report_state_writer_logs_an_outage_once(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    async with kernel(cluster, test_mode=True) as mp:
        await mp.repos.tenants.add("acme")
        writer = StateWriter(mp, {})
        with caplog.at_level(logging.INFO, logger=report_state.log.name):
            await asyncio.to_thread(cluster.stop)
            writer.put(Outcome(tenant_id="acme", ts=time.time(), ok=True))
            flushing = asyncio.create_task(writer.flush())  # retries every 0.5 s meanwhile
            await asyncio.sleep(OUTAGE_SECONDS)
            assert not flushing.done()
            await asyncio.to_thread(cluster.start)
            await asyncio.wait_for(flushing, timeout=30)
        assert_bounded(lines_of(caplog, report_state.log.name))


@pytest.mark.requires_plugins("smtp", "auth_token", "reporter_http")
def test_a_tenant_report_cut_by_an_outage_is_logged_once(
    cluster: Cluster, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The database goes away while a tenant's report is in flight: the tenant's task fails on
    its next read and backs off, logged as part of the outage (no traceback per tenant)."""
    from mailproxy_reporter_http.testing import ClientApp

    reporting_log = "mailproxy_core.dispatch.reporting"
    with (
        ClientApp() as app,
        running_service(
            f"{cluster.url}?schema=report_{uuid.uuid4().hex[:8]}",
            tmp_path,
            test_mode=False,
            report_interval=1,
        ) as service,
    ):
        app.hang = True  # the first report waits for an answer
        tenant = {"id": "acme", "client_base_url": app.url, "client_auth": {"method": "none"}}
        assert service.post("/tenants/add", tenant).status_code == 200
        account = {"id": "smtp", "tenant_id": "acme", "host": "127.0.0.1",
                   "port": service.smtp_port, "use_tls": False}  # fmt: skip
        assert service.post("/accounts/add", account).status_code == 200
        messages = [
            {"id": f"r{n}", "tenant_id": "acme", "account_id": "smtp", "from": "a@acme.example",
             "to": "b@example.com", "subject": "s", "body": "b"}
            for n in range(3)
        ]  # fmt: skip
        assert service.post("/messages/add_batch", {"messages": messages}).status_code == 200
        deadline = time.monotonic() + 30
        while not app.received():
            assert time.monotonic() < deadline, "no report arrived"
            time.sleep(0.05)
        with caplog.at_level(logging.INFO, logger=reporting_log):
            cluster.stop()
            app.release()  # answered now: the task goes on and finds the database away
            time.sleep(OUTAGE_SECONDS)
            cluster.start()
            deadline = time.monotonic() + 30
            while not any("available again" in r.getMessage() for r in caplog.records):
                assert time.monotonic() < deadline, "the reporting loop never saw it back"
                time.sleep(0.1)
        lines = lines_of(caplog, reporting_log)
        assert_bounded(lines)


@pytest.mark.requires_plugins("ee_bounce")
async def test_no_background_task_ends_on_an_outage(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    """Every background task outlives an outage that starts right after startup. Before, the
    bounce configuration refresh ended for good on a database error, and so did the reporting
    loop when the outage came before it had loaded the tenants' states."""
    bounce_log = "mailproxy_ee_bounce.runtime"
    sections = {"ee_bounce": {"config_refresh": 0.1}}
    async with kernel(cluster, test_mode=False, plugin_sections=sections) as mp:
        tasks = dict(mp.background_tasks)
        with caplog.at_level(logging.INFO):
            await outage(cluster)
            await until(back_again(caplog, bounce_log))
            await asyncio.sleep(1.0)  # a round of every short loop after the restart
        ended = [name for name, task in tasks.items() if task.done()]
        assert not ended, ended
        assert_bounded(lines_of(caplog, bounce_log))
        kernel_errors = [r for r in lines_of(caplog, "mailproxy_core.kernel") if r.levelno >= 40]
        assert not kernel_errors, [r.getMessage() for r in kernel_errors]
