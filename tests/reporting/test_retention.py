"""Retention: finished messages whose events are all reported, older than the retention, go away.

``apply_retention`` is ``messages/cleanup`` for every tenant; the ``report_retention`` background
task runs it on a timer (``serve`` only). The clock is moved forward instead of waiting days.
Both databases.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from mailproxy_core import ReportAck, ReporterSpec, hookimpl
from mailproxy_core.dispatch.retention import apply_retention, retention_interval
from mailproxy_core.kernel import MailProxy
from mailproxy_core.testing.client import ApiClient
from mailproxy_core.testing.dispatch import dispatch_now
from tests.reporting.support import enqueue, loop_of, message, wait_for_async

RETENTION = {"test_mode": True, "report_retention_seconds": 100}


class AckingReporter:
    def __init__(self, mp: MailProxy) -> None:
        pass

    async def report(self, tenant: Any, events: Any) -> ReportAck:
        return ReportAck(ok=True)


class AckingPlugin:
    @hookimpl
    def mailproxy_register_reporters(self) -> list[ReporterSpec]:
        return [ReporterSpec("ack", AckingReporter)]


@pytest.fixture(autouse=True)
def _ack(register_plugin: Any) -> None:
    register_plugin(AckingPlugin(), name="ack_reporter")


async def _status(client: ApiClient, tenant_id: str, mid: str) -> int:
    return (await client.get("/messages/get", message_id=mid, tenant_id=tenant_id)).status


async def _setup(client: ApiClient, mp: MailProxy, add_tenant: Any) -> None:
    """acme/done: sent and reported; lost/unreported: sent, its event not reported (the tenant's
    reporter is gone); acme/later: pending (deferred for a day)."""
    await add_tenant("acme", reporter="ack")
    await add_tenant("lost", reporter="ack")
    await mp.repos.tenants.update("lost", reporter="gone")
    later = int(time.time()) + 86400
    await enqueue(
        client,
        message("acme", "done"),
        message("lost", "unreported"),
        message("acme", "later", deferred_ts=later),
    )
    await dispatch_now(mp)
    assert (await client.post("/instance/run_now")).status == 200
    await (await loop_of(mp)).settled()
    assert await mp.repos.events.unreported("acme", 1) == []
    assert len(await mp.repos.events.unreported("lost", 5)) == 1


@pytest.mark.parametrize("report_settings", [RETENTION], indirect=True)
async def test_retention_deletes_only_old_finished_fully_reported_messages(
    mp_client: ApiClient, mp_kernel: MailProxy, add_tenant: Any
) -> None:
    await _setup(mp_client, mp_kernel, add_tenant)

    assert await apply_retention(mp_kernel) == 0  # everything is recent
    assert await apply_retention(mp_kernel, clock=lambda: time.time() + 50) == 0
    assert await apply_retention(mp_kernel, clock=lambda: time.time() + 200) == 1
    assert await _status(mp_client, "acme", "done") == 404  # deleted, with its events
    assert await _status(mp_client, "lost", "unreported") == 200  # an event is unreported
    assert await _status(mp_client, "acme", "later") == 200  # not finished
    assert len(await mp_kernel.repos.events.unreported("lost", 5)) == 1


@pytest.mark.parametrize(
    "report_settings", [{**RETENTION, "report_retention_seconds": 0}], indirect=True
)
async def test_retention_zero_keeps_everything(
    mp_client: ApiClient, mp_kernel: MailProxy, add_tenant: Any
) -> None:
    await _setup(mp_client, mp_kernel, add_tenant)
    assert await apply_retention(mp_kernel, clock=lambda: time.time() + 10**8) == 0
    assert await _status(mp_client, "acme", "done") == 200


@pytest.mark.parametrize(
    "report_settings",
    [{"report_retention_seconds": 1, "report_interval": 0.2}],
    indirect=True,
)
async def test_the_background_task_applies_retention(
    mp_client: ApiClient, mp_kernel: MailProxy, add_tenant: Any
) -> None:
    assert retention_interval(0.2) == 1.0 and retention_interval(300.0) == 300.0
    assert retention_interval(10**6) == 3600.0
    tasks = {spec.name: spec.dispatch_only for spec in mp_kernel.registry.background_tasks}
    assert tasks["reporting"] is False and tasks["report_retention"] is False  # serve only
    assert "report_retention" in mp_kernel.background_tasks

    await add_tenant("acme", reporter="ack")
    await enqueue(mp_client, message("acme", "m1"))
    await wait_for_async(lambda: _gone(mp_client, "acme", "m1"), within=10.0)


async def _gone(client: ApiClient, tenant_id: str, mid: str) -> bool:
    return await _status(client, tenant_id, mid) == 404
