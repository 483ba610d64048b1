"""Counters and gauges after real sends: REST enqueue → dispatcher → aiosmtpd (scripted)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mailproxy_core.app import create_app, kernel_of
from mailproxy_core.testing.client import ApiClient
from mailproxy_core.testing.dispatch import dispatch_now
from mailproxy_core.testing.plugin import ADMIN_TOKEN

pytestmark = pytest.mark.requires_plugins("smtp", "auth_token")


def acme(account_id: str = "main", tenant_name: str = "Acme Corp") -> frozenset[tuple[str, str]]:
    """Labels of the reference counters for an account of tenant ``acme``."""
    return frozenset(
        {
            ("tenant_id", "acme"),
            ("tenant_name", tenant_name),
            ("account_id", account_id),
            ("account_name", account_id),
        }
    )


def attempts(outcome: str, account_id: str = "main") -> frozenset[tuple[str, str]]:
    """Labels of ``gmp_send_duration_seconds``."""
    return frozenset({("tenant_id", "acme"), ("account_id", account_id), ("outcome", outcome)})


async def test_metrics_count_sent_messages(relay, mp_app, mp_kernel, enqueue, make_message, scrape):
    await enqueue(relay, make_message("m1"), make_message("m2"))
    await dispatch_now(mp_kernel)
    samples = await scrape(mp_app)
    assert samples[("gmp_sent_total", acme())] == 2
    for name in ("gmp_errors_total", "gmp_deferred_total", "gmp_rate_limited_total"):
        assert (name, acme()) not in samples
    assert samples[("gmp_send_duration_seconds_count", attempts("sent"))] == 2
    assert samples[("gmp_send_duration_seconds_sum", attempts("sent"))] > 0
    inf_bucket = attempts("sent") | {("le", "+Inf")}
    assert samples[("gmp_send_duration_seconds_bucket", inf_bucket)] == 2
    assert samples[("gmp_messages", frozenset({("status", "sent")}))] == 2
    assert samples[("gmp_pending_messages", frozenset())] == 0


async def test_metrics_count_a_550_as_an_error(
    relay, server, mp_app, mp_kernel, enqueue, make_message, scrape
):
    server.handler.script("DATA", "550 5.7.1 Message rejected as spam")
    await enqueue(relay, make_message("m1"))
    await dispatch_now(mp_kernel)
    samples = await scrape(mp_app)
    assert samples[("gmp_errors_total", acme())] == 1
    assert ("gmp_sent_total", acme()) not in samples
    assert ("gmp_rate_limited_total", acme()) not in samples
    assert samples[("gmp_send_duration_seconds_count", attempts("error"))] == 1
    assert samples[("gmp_messages", frozenset({("status", "error")}))] == 1


async def test_metrics_count_a_451_as_deferred_and_pending(
    relay, server, mp_app, mp_kernel, enqueue, make_message, scrape
):
    server.handler.script("DATA", "451 4.7.1 Try again later")
    await enqueue(relay, make_message("m1"))
    await dispatch_now(mp_kernel)  # retry_delays is an hour: the message stays deferred
    samples = await scrape(mp_app)
    assert samples[("gmp_deferred_total", acme())] == 1
    assert ("gmp_rate_limited_total", acme()) not in samples
    assert samples[("gmp_send_duration_seconds_count", attempts("deferred"))] == 1
    assert samples[("gmp_pending_messages", frozenset())] == 1
    assert samples[("gmp_messages", frozenset({("status", "deferred")}))] == 1
    assert samples[("gmp_queue_oldest_age_seconds", frozenset())] == 0  # not ready for an hour


async def test_metrics_count_a_rate_limit_deferral_as_deferred_and_rate_limited(
    relay, server, mp_app, mp_kernel, add_account, enqueue, make_message, scrape
):
    await add_account(relay, server, "limited", limit_per_hour=1)
    await enqueue(relay, *(make_message(f"m{i}", account_id="limited") for i in range(2)))
    await dispatch_now(mp_kernel)
    samples = await scrape(mp_app)
    limited = acme("limited")
    assert samples[("gmp_sent_total", limited)] == 1
    assert samples[("gmp_deferred_total", limited)] == 1
    assert samples[("gmp_rate_limited_total", limited)] == 1
    assert ("gmp_errors_total", limited) not in samples
    # The deferred attempt never reached the transport: it has no duration.
    assert ("gmp_send_duration_seconds_count", attempts("deferred", "limited")) not in samples
    assert samples[("gmp_send_duration_seconds_count", attempts("sent", "limited"))] == 1
    assert samples[("gmp_pending_messages", frozenset())] == 1


async def test_metrics_count_a_rate_limit_rejection_as_error_and_rate_limited(
    relay, server, mp_app, mp_kernel, add_account, enqueue, make_message, scrape
):
    await add_account(relay, server, "limited", limit_per_hour=1, limit_behavior="reject")
    await enqueue(relay, *(make_message(f"m{i}", account_id="limited") for i in range(2)))
    await dispatch_now(mp_kernel)
    samples = await scrape(mp_app)
    limited = acme("limited")
    assert samples[("gmp_sent_total", limited)] == 1
    assert samples[("gmp_errors_total", limited)] == 1
    assert samples[("gmp_rate_limited_total", limited)] == 1
    assert ("gmp_deferred_total", limited) not in samples


async def test_metrics_pending_gauge_and_queue_age(relay, mp_app, enqueue, make_message, scrape):
    await enqueue(relay, *(make_message(f"m{i}") for i in range(3)))
    await asyncio.sleep(1.1)  # created_at has one-second resolution
    samples = await scrape(mp_app)
    assert samples[("gmp_pending_messages", frozenset())] == 3
    assert samples[("gmp_messages", frozenset({("status", "pending")}))] == 3
    assert samples[("gmp_queue_oldest_age_seconds", frozenset())] >= 1


@pytest.mark.parametrize("metrics_section", [{"tenant_name_ttl": 0.05}])
async def test_metrics_tenant_name_follows_a_rename(
    relay, mp_app, mp_kernel, enqueue, make_message, scrape
):
    await enqueue(relay, make_message("m1"))
    await dispatch_now(mp_kernel)
    assert (await scrape(mp_app))[("gmp_sent_total", acme())] == 1
    renamed = await relay.post("/tenants/update", tenant_id="acme", name="Acme Inc")
    assert renamed.status == 200, renamed.json
    await asyncio.sleep(0.1)  # past tenant_name_ttl
    samples = await scrape(mp_app)
    assert samples[("gmp_sent_total", acme(tenant_name="Acme Inc"))] == 1
    assert ("gmp_sent_total", acme()) not in samples  # one series per account, not two


@pytest.mark.parametrize("metrics_section", [{"tenant_names": False}])
async def test_metrics_tenant_names_off_label_with_the_tenant_id(
    relay, mp_app, mp_kernel, enqueue, make_message, scrape
):
    await enqueue(relay, make_message("m1"))
    await dispatch_now(mp_kernel)
    samples = await scrape(mp_app)
    assert samples[("gmp_sent_total", acme(tenant_name="acme"))] == 1


async def test_metrics_two_apps_in_one_process_have_independent_registries(
    tmp_path: Path, server, instance_settings, add_account, enqueue, make_message, scrape
):
    first = create_app(instance_settings(str(tmp_path / "first.db")))
    second = create_app(instance_settings(str(tmp_path / "second.db")))
    async with first.test_app(), second.test_app():
        for app in (first, second):
            await add_account(ApiClient(app.test_client(), token=ADMIN_TOKEN), server)
        await enqueue(ApiClient(first.test_client(), token=ADMIN_TOKEN), make_message("m1"))
        await dispatch_now(kernel_of(first))
        await dispatch_now(kernel_of(second))

        assert (await scrape(first))[("gmp_sent_total", acme())] == 1
        on_second = await scrape(second)
        assert ("gmp_sent_total", acme()) not in on_second
        assert ("gmp_send_duration_seconds_count", attempts("sent")) not in on_second
        assert on_second[("gmp_messages", frozenset({("status", "sent")}))] == 0
