"""The receipt loop on SQLite and PostgreSQL: interval read every round, polls on request, a
failing handler isolated and shown, one process per handler (lease, take-over), workers never
poll."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from quart import Quart

from mailproxy_core import MailProxy, ReceiptHandlerSpec, Settings, hookimpl
from mailproxy_core.app import create_app, kernel_of
from mailproxy_core.dispatch import receipts as receipt_loop
from mailproxy_core.testing.plugin import ADMIN_TOKEN, admin_token_plugins
from mailproxy_core.testing.receipts import poll_receipts_now


class CountingHandler:
    """Counts polls; raises while ``failure`` is set."""

    def __init__(self, mp: MailProxy, interval: float = 3600.0) -> None:
        self.poll_interval = interval
        self.polls = 0
        self.failure: str | None = None
        self.closed = False
        self.polled = asyncio.Event()

    async def poll(self) -> None:
        self.polls += 1
        self.polled.set()
        if self.failure:
            raise ConnectionError(self.failure)

    async def aclose(self) -> None:
        self.closed = True


class HandlersPlugin:
    """Registers handlers ``alpha`` and ``beta``; keeps the built objects."""

    def __init__(self, interval: float = 3600.0, broken: bool = False) -> None:
        self.built: dict[str, CountingHandler] = {}
        self.interval = interval
        self.broken = broken

    def _factory(self, name: str) -> Callable[[MailProxy], CountingHandler]:
        def build(mp: MailProxy) -> CountingHandler:
            if self.broken and name == "beta":
                raise RuntimeError("beta has no configuration")
            handler = self.built[name] = CountingHandler(mp, self.interval)
            return handler

        return build

    @hookimpl
    def mailproxy_register_receipt_handlers(self):
        return [ReceiptHandlerSpec(name, self._factory(name)) for name in ("alpha", "beta")]


def _settings(db_url: str, **values: Any) -> Settings:
    return Settings.from_values(db=db_url, api_token=ADMIN_TOKEN, **values)


@asynccontextmanager
async def running(
    settings: Settings, plugin: HandlersPlugin, role: str = "serve"
) -> AsyncIterator[tuple[Quart, MailProxy]]:
    app = create_app(
        settings, role=role, extra_plugins={"handlers": plugin, **admin_token_plugins()}
    )  # type: ignore[arg-type]
    async with app.test_app():
        yield app, kernel_of(app)


async def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


@pytest.fixture
def fast_leases(monkeypatch: pytest.MonkeyPatch) -> None:
    """Leases of 1 s renewed every 0.1 s, so take-overs happen within a test."""
    monkeypatch.setattr(receipt_loop, "LEASE_SECONDS", 1)
    monkeypatch.setattr(receipt_loop, "RENEW_EVERY", 0.1)


async def test_polls_at_the_current_interval_and_on_request(db_url, fast_leases):
    plugin = HandlersPlugin(interval=3600.0)
    async with running(_settings(db_url, test_mode=False), plugin) as (_app, mp):
        alpha = plugin.built["alpha"]
        await until(lambda: alpha.polls == 1)  # at once at start, then not for an hour
        await asyncio.sleep(0.3)
        assert alpha.polls == 1
        alpha.poll_interval = 0.05  # a runtime change applies without a restart
        await until(lambda: alpha.polls >= 4)
        alpha.poll_interval = 3600.0
        await asyncio.sleep(0.2)
        settled = alpha.polls
        mp.request_receipt_poll("alpha")
        await until(lambda: alpha.polls == settled + 1)
        status = mp.receipt_handler_status("alpha")
        assert status is not None and status.polling and status.last_error is None
        assert status.last_poll_ts is not None and abs(status.last_poll_ts - time.time()) < 5
        assert mp.receipt_handler_status("unknown") is None
    assert alpha.closed


async def test_test_mode_polls_only_when_asked_run_now_polls_every_handler(db_url):
    plugin = HandlersPlugin()
    async with running(_settings(db_url, test_mode=True), plugin) as (app, _mp):
        await asyncio.sleep(0.3)
        assert [h.polls for h in plugin.built.values()] == [0, 0]
        client = app.test_client()
        response = await client.post(
            "/instance/run_now", json={}, headers={"X-API-Token": ADMIN_TOKEN}
        )
        assert response.status_code == 200
        await until(lambda: all(h.polls == 1 for h in plugin.built.values()))


async def test_a_failing_handler_is_shown_and_retried_and_never_stops_the_others(
    db_url, fast_leases
):
    plugin = HandlersPlugin(interval=0.05)
    async with running(_settings(db_url, test_mode=False), plugin) as (_app, mp):
        alpha, beta = plugin.built["alpha"], plugin.built["beta"]
        await until(lambda: alpha.polls >= 1)
        alpha.failure = "imap.example.com:993 refused the connection"
        failed_at = alpha.polls
        await until(lambda: alpha.polls >= failed_at + 3)  # retried every round
        status = mp.receipt_handler_status("alpha")
        assert status is not None
        assert status.last_error == "ConnectionError: imap.example.com:993 refused the connection"
        last_ok = status.last_poll_ts
        beta_polls = beta.polls
        await until(lambda: beta.polls >= beta_polls + 3)  # beta is unaffected
        alpha.failure = None
        await until(
            lambda: (s := mp.receipt_handler_status("alpha")) is not None and s.last_error is None
        )
        status = mp.receipt_handler_status("alpha")
        assert status is not None and status.last_poll_ts is not None
        assert last_ok is None or status.last_poll_ts >= last_ok
        # The outcome is in the database for every process.
        rows = await mp.repos.receipt_leases.get_all()
        assert rows["alpha"]["last_error"] is None and rows["alpha"]["last_poll_ts"] is not None


async def test_poll_receipts_now_waits_for_the_poll_and_its_outcome(db_url):
    plugin = HandlersPlugin()
    async with running(_settings(db_url, test_mode=True), plugin) as (_app, mp):
        status = await poll_receipts_now(mp, "alpha")
        assert plugin.built["alpha"].polls == 1 and plugin.built["beta"].polls == 0
        assert status.polling and status.last_error is None and status.last_poll_ts is not None
        plugin.built["alpha"].failure = "mailbox gone"
        status = await poll_receipts_now(mp, "alpha")
        assert status.last_error == "ConnectionError: mailbox gone"
        with pytest.raises(AssertionError, match="no receipt handler named 'gamma'"):
            await poll_receipts_now(mp, "gamma")


async def test_a_handler_that_cannot_be_built_is_shown_the_others_run(db_url):
    plugin = HandlersPlugin(broken=True)
    async with running(_settings(db_url, test_mode=True), plugin) as (_app, mp):
        mp.request_receipt_poll()
        await until(lambda: plugin.built["alpha"].polls == 1)
        status = mp.receipt_handler_status("beta")
        assert status is not None and not status.polling
        assert status.last_error == "RuntimeError: beta has no configuration"


async def test_one_process_polls_a_handler_and_another_takes_over(db_url, fast_leases):
    first, second = HandlersPlugin(), HandlersPlugin()
    settings = _settings(db_url, test_mode=True)
    async with running(settings, first) as (_a, mp_a):
        await until(lambda: mp_a.receipt_handler_status("alpha").polling)  # type: ignore[union-attr]
        async with running(settings, second) as (_b, mp_b):
            await asyncio.sleep(0.3)  # several lease rounds
            assert not mp_b.receipt_handler_status("alpha").polling  # type: ignore[union-attr]
            for _ in range(3):
                mp_a.request_receipt_poll()
                mp_b.request_receipt_poll()
                await asyncio.sleep(0.2)
            polls = {
                name: (first.built[name].polls, second.built[name].polls)
                for name in ("alpha", "beta")
            }
            assert all(a >= 1 and b == 0 for a, b in polls.values()), polls
            # Process A stops (its leases are released): B takes over at once.
            await _stop_early(mp_a)
            await until(lambda: mp_b.receipt_handler_status("alpha").polling)  # type: ignore[union-attr]
            mp_b.request_receipt_poll("alpha")
            await until(lambda: second.built["alpha"].polls == 1)
            # B now shows what A recorded, and its own poll.
            assert mp_b.receipt_handler_status("alpha").last_poll_ts is not None  # type: ignore[union-attr]


async def test_a_dead_holder_is_taken_over_when_its_lease_ends(
    db_url, fast_leases, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(receipt_loop, "LEASE_SECONDS", 3)  # time to look at the orphaned lease
    first, second = HandlersPlugin(), HandlersPlugin()
    settings = _settings(db_url, test_mode=True)
    async with running(settings, first) as (_a, mp_a):
        await until(lambda: mp_a.receipt_handler_status("alpha").polling)  # type: ignore[union-attr]
        async with running(settings, second) as (_b, mp_b):

            async def crash(self: Any, name: str, owner: str) -> None:
                return None  # a process that dies never releases its leases

            mp_a_owner = mp_a.receipt_loop.owner  # type: ignore[union-attr]
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(type(mp_a.repos.receipt_leases), "release", crash)
                await _stop_early(mp_a)
            row = (await mp_b.repos.receipt_leases.get_all())["alpha"]
            assert row["owner"] == mp_a_owner  # the dead holder's lease is still there
            await until(lambda: mp_b.receipt_handler_status("alpha").polling)  # type: ignore[union-attr]
            assert time.time() >= row["lease_until"]  # taken over only once it ended


async def test_worker_processes_never_poll(db_url):
    plugin = HandlersPlugin()
    async with running(_settings(db_url, test_mode=True), plugin, role="worker") as (_app, mp):
        mp.request_receipt_poll()
        await asyncio.sleep(0.3)
        assert plugin.built == {}  # not even built
        assert "receipts" not in mp.background_tasks
        status = mp.receipt_handler_status("alpha")
        assert status is not None and not status.polling and status.last_poll_ts is None


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_a_request_in_one_process_polls_in_the_holder(db_url):
    first, second = HandlersPlugin(), HandlersPlugin()
    settings = _settings(db_url, test_mode=True)
    async with running(settings, first) as (_a, mp_a):
        await until(lambda: mp_a.receipt_handler_status("alpha").polling)  # type: ignore[union-attr]
        async with running(settings, second) as (_b, mp_b):
            await asyncio.sleep(0.3)
            mp_b.request_receipt_poll("alpha")  # relayed by NOTIFY
            await until(lambda: first.built["alpha"].polls == 1)
            await asyncio.sleep(0.2)
            assert first.built["beta"].polls == 0 and second.built["alpha"].polls == 0


async def _stop_early(mp: MailProxy) -> None:
    """Stop the receipt loop of ``mp`` as its shutdown would (the app keeps running)."""
    task = mp.background_tasks["receipts"]
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
