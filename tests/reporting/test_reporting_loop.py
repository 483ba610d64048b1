"""The reporting loop in the kernel, with an embedder's own ``Reporter`` (no HTTP plugin needed).

A third party registers a reporter through ``mailproxy_register_reporters`` and names it in the
tenant's ``reporter`` field; the loop hands it the tenant's events in order, in batches, keeps
them on failure and backs off. Messages go through the ``null`` transport. Both databases.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import pytest

from mailproxy_core import DeliveryEvent, ReportAck, ReporterSpec, Tenant, hookimpl
from mailproxy_core.app import create_app, kernel_of
from mailproxy_core.dispatch.reporting import MAX_BACKOFF, backoff_delay
from mailproxy_core.kernel import MailProxy
from mailproxy_core.testing.client import ApiClient
from mailproxy_core.testing.dispatch import dispatch_now
from mailproxy_core.testing.plugin import ADMIN_TOKEN
from tests.reporting.support import enqueue, loop_of, message, wait_for_async

TEST_MODE = {"test_mode": True, "report_interval": 10.0}


class BusReporter:
    """Collects what it is handed; answers as the test says."""

    def __init__(self, mp: MailProxy) -> None:
        self.calls: list[tuple[str, list[DeliveryEvent]]] = []
        self.answer = ReportAck(ok=True)
        self.error: Exception | None = None
        self.max_batch = 7

    async def report(self, tenant: Tenant, events: Sequence[DeliveryEvent]) -> ReportAck:
        self.calls.append((tenant.id, list(events)))
        if self.error is not None:
            raise self.error
        return self.answer

    def events(self, tenant_id: str | None = None) -> list[DeliveryEvent]:
        return [e for t, batch in self.calls if tenant_id in (None, t) for e in batch]


class BusPlugin:
    @hookimpl
    def mailproxy_register_reporters(self) -> list[ReporterSpec]:
        return [ReporterSpec("bus", BusReporter)]


@pytest.fixture(autouse=True)
def _bus(register_plugin: Any) -> None:
    register_plugin(BusPlugin(), name="bus_reporter")


@pytest.fixture
def bus(mp_kernel: MailProxy) -> BusReporter:
    reporter = mp_kernel.reporters["bus"]
    assert isinstance(reporter, BusReporter)
    return reporter


def test_backoff_starts_at_the_interval_doubles_and_is_capped() -> None:
    assert [backoff_delay(n, 0.2) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert [backoff_delay(n, 30.0) for n in (1, 2, 3, 4, 5)] == [30.0, 60.0, 120.0, 240.0, 300.0]
    assert backoff_delay(10_000, 300.0) == MAX_BACKOFF == 300.0


@pytest.mark.parametrize("report_settings", [TEST_MODE], indirect=True)
async def test_events_are_handed_over_in_event_order_in_batches(
    mp_client: ApiClient, mp_kernel: MailProxy, bus: BusReporter, add_tenant
) -> None:
    await add_tenant("acme", reporter="bus")
    await add_tenant("globex", reporter="bus")
    await enqueue(mp_client, *(message("acme", f"a{n:02d}") for n in range(20)))
    await enqueue(mp_client, *(message("globex", f"g{n:02d}") for n in range(3)))
    await dispatch_now(mp_kernel)
    expected = await mp_kernel.repos.events.unreported("acme", 100)
    assert bus.calls == []  # test mode: nothing before run_now

    await _run_now(mp_client, mp_kernel)
    acme = [call for call in bus.calls if call[0] == "acme"]
    assert [len(batch) for _, batch in acme] == [7, 7, 6]
    assert [e.event_id for e in bus.events("acme")] == [row["event_id"] for row in expected]
    first = bus.events("acme")[0]
    assert (first.tenant_id, first.message_id, first.event_type) == (
        "acme",
        expected[0]["message_id"],
        "sent",
    )
    assert first.event_ts == expected[0]["event_ts"] and first.metadata == {}
    assert sorted(e.message_id for e in bus.events("globex")) == ["g00", "g01", "g02"]
    assert await mp_kernel.repos.events.unreported("acme", 1) == []

    await _run_now(mp_client, mp_kernel)  # acknowledged events are never handed over again
    assert len(bus.events()) == 23


@pytest.mark.parametrize("report_settings", [TEST_MODE], indirect=True)
async def test_a_refused_report_keeps_the_events_and_backs_off(
    mp_client: ApiClient, mp_kernel: MailProxy, bus: BusReporter, add_tenant
) -> None:
    await add_tenant("acme", reporter="bus")
    await enqueue(mp_client, message("acme", "m1"), message("acme", "m2"))
    await dispatch_now(mp_kernel)
    bus.answer = ReportAck(ok=False, detail="bus unavailable")

    before = int(time.time())
    await _run_now(mp_client, mp_kernel)
    state = await mp_kernel.repos.sync_state.get("acme")
    assert state is not None and state["failures"] == 1 and state["last_error"] == "bus unavailable"
    assert before + 10 <= state["next_attempt_ts"] <= int(time.time()) + 11
    assert len(await mp_kernel.repos.events.unreported("acme", 10)) == 2

    bus.answer, bus.error = ReportAck(ok=True), RuntimeError("the bus exploded")
    await _run_now(mp_client, mp_kernel)  # run_now ignores the back-off
    state = await mp_kernel.repos.sync_state.get("acme")
    assert state is not None and state["failures"] == 2
    assert state["last_error"] == "reporter error: RuntimeError"
    assert state["next_attempt_ts"] >= before + 20

    bus.error = None
    await _run_now(mp_client, mp_kernel)
    assert await mp_kernel.repos.events.unreported("acme", 10) == []
    state = await mp_kernel.repos.sync_state.get("acme")
    assert state is not None and state["failures"] == 0 and state["next_attempt_ts"] is None
    same = [[e.event_id for e in batch] for _, batch in (bus.calls[0], bus.calls[-1])]
    assert same[0] == same[1] and len(same[0]) == 2  # the same events, in the same order


@pytest.mark.parametrize("report_settings", [TEST_MODE], indirect=True)
async def test_a_reporter_that_is_not_installed_keeps_the_events(
    mp_client: ApiClient, mp_kernel: MailProxy, add_tenant
) -> None:
    await add_tenant("acme", reporter="bus")
    await mp_kernel.repos.tenants.update("acme", reporter="pigeon")  # e.g. its plugin removed
    await enqueue(mp_client, message("acme", "m1"))
    await dispatch_now(mp_kernel)
    await _run_now(mp_client, mp_kernel)
    state = await mp_kernel.repos.sync_state.get("acme")
    assert state is not None and state["failures"] == 1
    assert state["last_error"].startswith("no reporter named 'pigeon' (available: ")
    assert len(await mp_kernel.repos.events.unreported("acme", 10)) == 1


@pytest.mark.parametrize("report_settings", [TEST_MODE], indirect=True)
async def test_run_now_for_a_tenant_polls_it_and_clears_do_not_disturb(
    mp_client: ApiClient, mp_kernel: MailProxy, bus: BusReporter, add_tenant
) -> None:
    await add_tenant("acme", reporter="bus")
    await add_tenant("globex", reporter="bus")
    bus.answer = ReportAck(ok=True, next_sync_after=time.time() + 3600)
    await _run_now(mp_client, mp_kernel, tenant_id="acme")
    assert bus.calls == [("acme", [])]  # an empty report; globex had nothing to report
    state = await mp_kernel.repos.sync_state.get("acme")
    assert state is not None and state["next_sync_after"] > time.time() + 3500

    bus.answer = ReportAck(ok=True)
    await _run_now(mp_client, mp_kernel, tenant_id="acme")
    assert bus.calls[-1] == ("acme", [])
    state = await mp_kernel.repos.sync_state.get("acme")
    assert state is not None and state["next_sync_after"] is None
    status = await mp_client.get("/instance/get_sync_status")
    acme = next(row for row in status.json["tenants"] if row["id"] == "acme")
    assert acme["in_dnd"] is False and acme["last_sync_ts"] >= int(time.time()) - 2


@pytest.mark.parametrize("report_settings", [{"report_interval": 0.2}], indirect=True)
async def test_a_slow_reporter_for_one_tenant_does_not_delay_another(
    mp_client: ApiClient, mp_kernel: MailProxy, bus: BusReporter, add_tenant
) -> None:
    release = asyncio.Event()
    fast_done = asyncio.Event()

    async def report(tenant: Tenant, events: Sequence[DeliveryEvent]) -> ReportAck:
        bus.calls.append((tenant.id, list(events)))
        if tenant.id == "slow":
            await release.wait()
        elif events:
            fast_done.set()
        return ReportAck(ok=True)

    bus.report = report  # type: ignore[method-assign]
    await add_tenant("slow", reporter="bus")
    await add_tenant("fast", reporter="bus")
    await enqueue(mp_client, message("slow", "s1"), message("fast", "f1"))
    await asyncio.wait_for(fast_done.wait(), 5.0)
    await wait_for_async(lambda: _none_unreported(mp_kernel, "fast"))
    assert not release.is_set() and not await _none_unreported(mp_kernel, "slow")
    release.set()
    await wait_for_async(lambda: _none_unreported(mp_kernel, "slow"))


async def _none_unreported(mp: MailProxy, tenant_id: str) -> bool:
    return not await mp.repos.events.unreported(tenant_id, 1)


async def _run_now(client: ApiClient, mp: MailProxy, tenant_id: str | None = None) -> None:
    """``instance/run_now`` and wait until the loop has done everything it asked for."""
    body = {} if tenant_id is None else {"tenant_id": tenant_id}
    response = await client.post("/instance/run_now", json=body)
    assert response.status == 200, response.json
    await (await loop_of(mp)).settled()


@pytest.mark.parametrize("report_settings", [TEST_MODE], indirect=True)
async def test_the_sync_state_survives_a_restart(mp_settings, mp_extra_plugins) -> None:
    first = create_app(mp_settings, extra_plugins=mp_extra_plugins)
    async with first.test_app():
        client = ApiClient(first.test_client(), token=ADMIN_TOKEN)
        kernel = kernel_of(first)
        await _add(client, "acme")
        await enqueue(client, message("acme", "m1"))
        await dispatch_now(kernel)
        kernel.reporters["bus"].answer = ReportAck(ok=False, detail="down")  # type: ignore[attr-defined]
        await _run_now(client, kernel)
        before = await kernel.repos.sync_state.get("acme")
    assert before is not None and before["failures"] == 1

    second = create_app(mp_settings, extra_plugins=mp_extra_plugins)
    async with second.test_app():
        client = ApiClient(second.test_client(), token=ADMIN_TOKEN)
        kernel = kernel_of(second)
        state = (await loop_of(kernel)).states["acme"]
        assert state.failures == 1 and state.retry_at == before["next_attempt_ts"]
        status = await client.get("/instance/get_sync_status")
        assert status.json["tenants"][0]["next_sync_ts"] == before["next_attempt_ts"]
        await _run_now(client, kernel)
        assert await _none_unreported(kernel, "acme")
        assert [e.message_id for e in kernel.reporters["bus"].events()] == ["m1"]  # type: ignore[attr-defined]


async def _add(client: ApiClient, tenant_id: str) -> None:
    assert (await client.post("/tenants/add", id=tenant_id, reporter="bus")).status == 200
    account = await client.post(
        "/accounts/add",
        id="main",
        tenant_id=tenant_id,
        host="x.invalid",
        port=25,
        transport="null",
    )
    assert account.status == 200, account.json


@pytest.mark.parametrize("report_settings", [{"report_interval": 0.2}], indirect=True)
async def test_a_tenant_deleted_during_its_report_is_forgotten(
    mp_client: ApiClient, mp_kernel: MailProxy, bus: BusReporter, add_tenant
) -> None:
    release = asyncio.Event()

    async def report(tenant: Tenant, events: Sequence[DeliveryEvent]) -> ReportAck:
        bus.calls.append((tenant.id, list(events)))
        if tenant.id == "gone" and events:
            await release.wait()
        return ReportAck(ok=True)

    bus.report = report  # type: ignore[method-assign]
    await add_tenant("gone", reporter="bus")
    await enqueue(mp_client, message("gone", "g1"))
    await wait_for_async(lambda: _handed_over(bus, "gone"))
    assert (await mp_client.post("/tenants/delete", tenant_id="gone")).status == 200
    release.set()  # acknowledged after the tenant (and its events) went away

    loop = await loop_of(mp_kernel)
    await wait_for_async(lambda: _forgotten(loop, "gone"))
    await add_tenant("kept", reporter="bus")
    await enqueue(mp_client, message("kept", "k1"))
    await wait_for_async(lambda: _none_unreported(mp_kernel, "kept"))
    assert await mp_kernel.repos.sync_state.get("gone") is None


async def _handed_over(bus: BusReporter, tenant_id: str) -> bool:
    return bool(bus.events(tenant_id))


async def _forgotten(loop: Any, tenant_id: str) -> bool:
    return tenant_id not in loop.states
