"""A claim whose answer was lost: its messages are sent without waiting for their leases.

When the database connection goes away after the server committed the dispatcher's round trip
and before the answer came back (a restart, a network cut), the claimed messages are leased to
this process, which never received them: before the fix they waited for their lease to expire
(a minute by default; all delivered 55 s after a PostgreSQL restart in one fault-suite run).

The lost answer is made by letting the real round trip commit and then raising the error the
driver raises when the connection drops: there is no peer here that can cut a connection at that
exact point of the protocol.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from mailproxy_core.testing.client import ApiClient
from mailproxy_core.testing.dispatch import dispatch_now
from mailproxy_core.testing.smtp import ScriptedServer
from tests.dispatch.support import enqueue, message, status_of

pytestmark = pytest.mark.requires_plugins("smtp", "auth_token")


@pytest.fixture
def dispatch_settings() -> dict[str, Any]:
    # a lease far longer than the test: only giving the claims back can send these messages
    return {"max_concurrency": 10, "max_per_account": 10, "lease_seconds": 3600.0}


async def test_messages_claimed_by_a_lost_answer_are_given_back_and_sent(
    relay: ApiClient, server: ScriptedServer, mp_kernel, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mailproxy_core.dispatch.dispatcher")
    await dispatch_now(mp_kernel)  # the dispatcher is running (nothing to send yet)
    ids = ["m1", "m2", "m3"]
    await enqueue(relay, *(message(mid, to=f"{mid}@example.com") for mid in ids))
    dispatcher = mp_kernel.dispatcher
    real_exchange = dispatcher.queue.exchange
    lost: list[int] = []

    async def exchange_losing_its_first_answer(*args: Any, **kwargs: Any) -> Any:
        written, rows = await real_exchange(*args, **kwargs)  # committed
        if not lost:
            lost.append(len(rows))
            raise ConnectionResetError("connection lost before the answer arrived")
        return written, rows

    dispatcher.queue.exchange = exchange_losing_its_first_answer
    await dispatch_now(mp_kernel)
    await dispatch_now(mp_kernel)  # the round after the failed one gives the claims back

    assert lost == [3], "the first round trip claimed the three messages"
    assert [await status_of(relay, mid) for mid in ids] == ["sent"] * 3
    assert sorted(m.rcpt_tos[0] for m in server.handler.messages) == [
        f"{mid}@example.com" for mid in ids
    ]  # each sent once
    assert "gave back 3 messages claimed by a database round trip" in caplog.text
