"""Hooks around a send, end to end over SMTP: the transport's duration reaches the outcome hooks,
and a ``prepare_message`` plugin still sees (and changes) every outgoing ``EmailMessage``."""

from __future__ import annotations

import email
from typing import Any

import pytest

from mailproxy_core import hookimpl
from mailproxy_core.testing.dispatch import dispatch_now
from tests.dispatch.support import enqueue, history, message

pytestmark = pytest.mark.requires_plugins("smtp", "auth_token")


class OutcomeRecorder:
    def __init__(self) -> None:
        self.outcomes: list[tuple[str, float | None]] = []

    @hookimpl
    def mailproxy_message_sent(self, duration: float | None) -> None:
        self.outcomes.append(("sent", duration))

    @hookimpl
    def mailproxy_message_deferred(self, duration: float | None) -> None:
        self.outcomes.append(("deferred", duration))


class Stamper:
    @hookimpl
    def mailproxy_prepare_message(self, mime: Any, message: Any) -> None:
        mime["X-Stamped"] = f"stamp-{message.id}"


@pytest.fixture
def recorder(register_plugin) -> OutcomeRecorder:
    return register_plugin(OutcomeRecorder(), "outcome_recorder")


@pytest.fixture
def stamper(register_plugin) -> Stamper:
    return register_plugin(Stamper(), "stamper")


async def test_outcome_hooks_get_the_transport_duration(recorder, relay, server, mp_kernel):
    # The first DATA stalls until the client's data timeout (2 s in these tests), then succeeds.
    server.handler.script("DATA", "stall")
    await enqueue(relay, message("m1"))
    await dispatch_now(mp_kernel)
    assert [kind for kind, _ in await history(relay, "m1")] == ["deferred", "sent"]
    (deferred, deferred_s), (sent, sent_s) = recorder.outcomes
    assert (deferred, sent) == ("deferred", "sent")
    assert deferred_s is not None and deferred_s >= 1.9  # waited for the data timeout
    assert sent_s is not None and 0 < sent_s < deferred_s


async def test_prepare_message_plugins_change_what_is_sent(stamper, relay, server, mp_kernel):
    await enqueue(relay, message("m1"), message("m2", html="<p>hi</p>"))
    await dispatch_now(mp_kernel)
    received = sorted(
        email.message_from_bytes(m.content)["X-Stamped"] for m in server.handler.messages
    )
    assert received == ["stamp-m1", "stamp-m2"]
