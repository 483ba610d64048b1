"""``messages/retry``: a failed or deferred message is sent again on request, nothing else is."""

from __future__ import annotations

import pytest

from mailproxy_core.testing.client import ApiClient
from mailproxy_core.testing.dispatch import dispatch_now
from mailproxy_core.testing.smtp import ScriptedServer
from tests.dispatch.support import enqueue, history, message, status_of

pytestmark = pytest.mark.requires_plugins("smtp", "auth_token")


async def test_a_failed_message_is_requeued_and_sent(
    relay: ApiClient, server: ScriptedServer, mp_kernel
) -> None:
    server.handler.rcpt_replies["bob@example.com"] = "550 5.1.1 User unknown"
    await enqueue(relay, message("m1"), message("m2", to="carol@example.com"))
    await dispatch_now(mp_kernel)
    assert await status_of(relay, "m1") == "error"
    assert await status_of(relay, "m2") == "sent"

    del server.handler.rcpt_replies["bob@example.com"]  # the mailbox exists now
    answer = await relay.post("/messages/retry", tenant_id="acme", ids=["m1", "m2", "ghost", "m1"])
    assert answer.status == 200, answer.json
    assert answer.json == {
        "ok": True,
        "requeued": 1,
        "not_found": ["ghost"],
        "skipped": [{"id": "m2", "reason": "sent"}],
    }
    got = await relay.get("/messages/get", message_id="m1", tenant_id="acme")
    assert (got.json["status"], got.json["attempts"]) == ("pending", 0)

    await dispatch_now(mp_kernel)
    assert await status_of(relay, "m1") == "sent"
    events = await history(relay, "m1")
    assert [kind for kind, _ in events] == ["error", "requeued", "sent"]
    assert events[1][1] == "requeued by the admin"
    full = await relay.get("/messages/get", message_id="m1", tenant_id="acme", include_history=True)
    requeued = full.json["history"][1]
    assert requeued["reported_ts"] is not None  # history only: never posted to the client
    assert len(server.handler.messages) == 2


async def test_retry_validates_its_input(relay: ApiClient) -> None:
    missing = await relay.post("/messages/retry", tenant_id="nope", ids=["x"])
    assert missing.status == 404
    wrong = await relay.post("/messages/retry", tenant_id="acme", ids="m1")
    assert wrong.status == 422
    empty = await relay.post("/messages/retry", tenant_id="acme", ids=[])
    assert empty.json == {"ok": True, "requeued": 0, "not_found": [], "skipped": []}
