"""Connection pooling against a real server: cap, reuse, stale sessions, TTL, idle cap, close."""

from __future__ import annotations

import asyncio

import pytest

from mailproxy_core import Envelope, PermanentSendError, TransientSendError
from mailproxy_smtp.pool import FairSlots

MIME = b"Subject: pooled\r\n\r\nhello\r\n"
ENVELOPE = Envelope(sender="shop@example.com", recipients=("ann@example.org",))


async def test_twenty_sends_share_at_most_three_connections(
    smtp_server, smtp_transport, make_account
):
    server = await smtp_server()
    transport = smtp_transport(max_connections=3)
    account = make_account(server)

    async def send(n: int) -> None:
        envelope = Envelope(sender="shop@example.com", recipients=(f"user{n}@example.org",))
        await transport.send(account, envelope, MIME)

    await asyncio.gather(*(send(n) for n in range(20)))

    assert len(server.handler.messages) == 20
    assert server.connections == 3  # all twenty were ready at once: the cap was reached
    assert server.peak_open <= 3
    assert transport.pool.open_sessions(account) <= 3


async def test_concurrent_sends_never_exceed_the_cap_server_side(
    smtp_server, smtp_transport, make_account, wait_until
):
    server = await smtp_server()
    transport = smtp_transport(max_connections=2)
    account = make_account(server)
    # The first two DATA replies stall, so both slots are busy while a third send waits.
    server.handler.script("DATA", "stall", "stall")
    sends = [asyncio.create_task(transport.send(account, ENVELOPE, MIME)) for _ in range(3)]
    await wait_until(lambda: server.handler.calls["DATA"] == 2)
    await asyncio.sleep(0.05)

    assert server.connections == 2
    assert server.handler.calls["MAIL"] == 2  # the third send is queued, not connected

    server.handler.unstall.set()  # the stalled DATA commands answer 451
    results = await asyncio.gather(*sends, return_exceptions=True)
    assert sum(isinstance(r, TransientSendError) for r in results) == 2
    assert len(server.handler.messages) == 1
    assert server.peak_open <= 2


async def test_waiters_are_served_in_arrival_order():
    slots = FairSlots(1)
    order: list[int] = []
    await slots.acquire()

    async def wait_turn(n: int) -> None:
        await slots.acquire()
        order.append(n)
        await asyncio.sleep(0)
        slots.release()

    waiters = [asyncio.create_task(wait_turn(n)) for n in range(5)]
    await asyncio.sleep(0)
    slots.release()
    await asyncio.gather(*waiters)

    assert order == [0, 1, 2, 3, 4]
    assert slots.in_use == 0


async def test_cancelled_waiter_does_not_leak_its_slot():
    slots = FairSlots(1)
    await slots.acquire()
    waiter = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    slots.release()

    assert slots.in_use == 0
    await asyncio.wait_for(slots.acquire(), timeout=1)


async def test_sequential_sends_reuse_one_connection(smtp_server, smtp_transport, make_account):
    server = await smtp_server()
    transport = smtp_transport()
    account = make_account(server)

    for _ in range(5):
        await transport.send(account, ENVELOPE, MIME)

    assert server.connections == 1
    assert len(server.handler.messages) == 5


async def test_failed_transaction_leaves_a_reusable_connection(
    smtp_server, smtp_transport, make_account
):
    server = await smtp_server()
    server.handler.script("RCPT", "550 5.1.1 User unknown")
    transport = smtp_transport()
    account = make_account(server)

    with pytest.raises(PermanentSendError, match=r"^all recipients refused: .* 550 5\.1\.1"):
        await transport.send(account, ENVELOPE, MIME)
    await transport.send(account, ENVELOPE, MIME)

    assert server.connections == 1
    assert len(server.handler.messages) == 1


async def test_connection_closed_by_the_server_while_idle_is_replaced(
    smtp_server, smtp_transport, make_account, wait_until
):
    server = await smtp_server()
    transport = smtp_transport()
    account = make_account(server)
    await transport.send(account, ENVELOPE, MIME)

    server.drop_connections()  # the server's idle timeout
    await wait_until(lambda: not server.open)
    await transport.send(account, ENVELOPE, MIME)

    assert server.connections == 2
    assert len(server.handler.messages) == 2


async def test_stale_connection_is_reopened_once_before_data(
    smtp_server, smtp_transport, make_account
):
    server = await smtp_server()
    transport = smtp_transport()
    account = make_account(server)
    await transport.send(account, ENVELOPE, MIME)

    # The pooled session dies at MAIL FROM, before anything of the message was sent.
    server.handler.script("MAIL", "drop")
    result = await transport.send(account, ENVELOPE, MIME)

    assert result.accepted == ("ann@example.org",)
    assert server.connections == 2
    assert len(server.handler.messages) == 2


async def test_421_on_a_reused_connection_is_retried_on_a_fresh_one(
    smtp_server, smtp_transport, make_account
):
    server = await smtp_server()
    transport = smtp_transport()
    account = make_account(server)
    await transport.send(account, ENVELOPE, MIME)

    server.handler.script("MAIL", "421 4.4.2 Idle timeout, closing connection")
    await transport.send(account, ENVELOPE, MIME)

    assert server.connections == 2
    assert len(server.handler.messages) == 2


async def test_fresh_connection_failing_is_not_retried(smtp_server, smtp_transport, make_account):
    server = await smtp_server()
    server.handler.script("MAIL", "drop")

    with pytest.raises(TransientSendError, match="lost during MAIL"):
        await smtp_transport().send(make_account(server), ENVELOPE, MIME)

    assert server.connections == 1


async def test_stale_retry_happens_only_once(smtp_server, smtp_transport, make_account):
    server = await smtp_server()
    transport = smtp_transport()
    account = make_account(server)
    await transport.send(account, ENVELOPE, MIME)

    server.handler.script("MAIL", "drop", "drop")
    with pytest.raises(TransientSendError, match="lost during MAIL"):
        await transport.send(account, ENVELOPE, MIME)

    assert server.connections == 2


async def test_failure_after_data_started_is_never_resent(
    smtp_server, smtp_transport, make_account
):
    server = await smtp_server()
    transport = smtp_transport()
    account = make_account(server)
    await transport.send(account, ENVELOPE, MIME)  # the next send runs on a reused session

    server.handler.script("DATA", "drop")
    with pytest.raises(TransientSendError, match="lost during DATA"):
        await transport.send(account, ENVELOPE, MIME)

    assert server.handler.calls["DATA"] == 2
    assert server.handler.calls["MAIL"] == 2
    assert server.connections == 1


async def test_idle_connection_is_health_checked_with_noop(
    smtp_server, smtp_transport, make_account
):
    server = await smtp_server()
    transport = smtp_transport(health_check_after=0)
    account = make_account(server)

    await transport.send(account, ENVELOPE, MIME)
    assert server.handler.calls["NOOP"] == 0
    await transport.send(account, ENVELOPE, MIME)

    assert server.handler.calls["NOOP"] == 1
    assert server.connections == 1


@pytest.mark.parametrize("noop_reply", ["drop", "421 4.4.2 closing"])
async def test_connection_failing_its_health_check_is_replaced_silently(
    smtp_server, smtp_transport, make_account, noop_reply
):
    server = await smtp_server()
    transport = smtp_transport(health_check_after=0)
    account = make_account(server)
    await transport.send(account, ENVELOPE, MIME)

    server.handler.script("NOOP", noop_reply)
    result = await transport.send(account, ENVELOPE, MIME)

    assert result.accepted == ("ann@example.org",)
    assert server.handler.calls["NOOP"] == 1
    assert server.connections == 2
    assert server.handler.calls["MAIL"] == 2  # the dead session never saw a MAIL FROM


async def test_recently_used_connection_skips_the_health_check(
    smtp_server, smtp_transport, make_account
):
    server = await smtp_server()
    transport = smtp_transport(health_check_after=60)
    account = make_account(server)

    await transport.send(account, ENVELOPE, MIME)
    await transport.send(account, ENVELOPE, MIME)

    assert server.handler.calls["NOOP"] == 0


async def test_ttl_expiry_forces_a_new_connection(
    smtp_server, smtp_transport, make_account, wait_until
):
    server = await smtp_server()
    transport = smtp_transport()
    account = make_account(server, ttl=1)

    await transport.send(account, ENVELOPE, MIME)
    assert server.connections == 1
    # idle_timeout is 60 s: only the TTL can close the pooled session this soon.
    await wait_until(lambda: not server.open)
    await transport.send(account, ENVELOPE, MIME)

    assert server.connections == 2


async def test_ttl_zero_disables_reuse(smtp_server, smtp_transport, make_account, wait_until):
    server = await smtp_server()
    transport = smtp_transport()
    account = make_account(server, ttl=0)

    await transport.send(account, ENVELOPE, MIME)
    await transport.send(account, ENVELOPE, MIME)

    assert server.connections == 2
    await wait_until(lambda: not server.open)


async def test_idle_connections_are_closed_after_the_idle_cap(
    smtp_server, smtp_transport, make_account, wait_until
):
    server = await smtp_server()
    transport = smtp_transport(idle_timeout=1.0)
    account = make_account(server)

    await transport.send(account, ENVELOPE, MIME)
    assert transport.pool.open_sessions(account) == 1
    await wait_until(lambda: not server.open)

    assert transport.pool.open_sessions(account) == 0


async def test_accounts_differing_in_tls_or_password_do_not_share_sessions(
    smtp_server, smtp_transport, make_account
):
    server = await smtp_server()
    transport = smtp_transport()

    await transport.send(make_account(server, use_tls=False), ENVELOPE, MIME)
    await transport.send(make_account(server, use_tls=None), ENVELOPE, MIME)
    await transport.send(make_account(server, use_tls=None), ENVELOPE, MIME)

    assert server.connections == 2


async def test_aclose_closes_idle_and_busy_connections(
    smtp_server, smtp_transport, make_account, wait_until
):
    server = await smtp_server()
    other = await smtp_server()
    transport = smtp_transport()
    await transport.send(make_account(server), ENVELOPE, MIME)
    other.handler.script("DATA", "stall")
    busy = asyncio.create_task(transport.send(make_account(other), ENVELOPE, MIME))
    await wait_until(lambda: other.handler.calls["DATA"] == 1)

    await transport.aclose()

    with pytest.raises(TransientSendError):
        await busy
    await wait_until(lambda: not server.open and not other.open)
    with pytest.raises(TransientSendError, match="shut down"):
        await transport.send(make_account(server), ENVELOPE, MIME)
