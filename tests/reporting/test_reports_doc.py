"""The code of docs/reports.md works: the signature check and the example receiver.

The Python blocks are taken from the page itself, so the documentation cannot drift from the
protocol the plugin speaks. Both databases (the receiver test runs a real instance).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mailproxy_core.kernel import MailProxy
from mailproxy_core.testing.client import ApiClient
from tests.reporting.support import enqueue, message, wait_for, wait_for_async

pytestmark = pytest.mark.requires_plugins("reporter_http", "auth_token")

PAGE = Path(__file__).resolve().parents[2] / "docs" / "reports.md"


def python_block(heading: str) -> str:
    """The first ```python block after ``heading`` in docs/reports.md."""
    text = PAGE.read_text()
    start = text.index("```python\n", text.index(heading)) + len("```python\n")
    return text[start : text.index("```", start)]


def run_block(heading: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "docs_reports"}
    exec(compile(python_block(heading), str(PAGE), "exec"), namespace)
    return namespace


def test_the_signature_snippet_verifies_what_the_plugin_signs() -> None:
    from mailproxy_reporter_http import signature

    verify = run_block("### Verifying the signature")["verify_signature"]
    body = b'{"delivery_report":[{"id":"m1","sent_ts":1}]}'
    now = int(time.time())
    assert verify("s3cret", signature("s3cret", body, now), body)
    assert not verify("other", signature("s3cret", body, now), body)
    assert not verify("s3cret", signature("s3cret", body, now), body + b" ")
    assert not verify("s3cret", signature("s3cret", body, now - 3600), body)  # a replay
    assert not verify("s3cret", "garbage", body)


@pytest.fixture
def receiver() -> Iterator[dict[str, Any]]:
    """The example receiver of the page, listening on a free port (``url`` in the namespace)."""
    namespace = run_block("### Example receiver")
    namespace["TOKEN"], namespace["SECRET"] = "tok-1", "sign-1"
    server = ThreadingHTTPServer(("127.0.0.1", 0), namespace["SyncHandler"])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    namespace["url"] = f"http://127.0.0.1:{server.server_address[1]}"
    yield namespace
    server.shutdown()
    server.server_close()


async def test_the_example_receiver_applies_each_report_once(
    mp_client: ApiClient, mp_kernel: MailProxy, add_tenant: Any, receiver: dict[str, Any]
) -> None:
    await add_tenant(
        "acme",
        client_base_url=receiver["url"],
        client_auth={"method": "bearer", "token": "tok-1"},
        report_signing_secret="sign-1",
    )
    await add_tenant(
        "intruder",
        client_base_url=receiver["url"],
        client_auth={"method": "bearer", "token": "tok-1"},
        report_signing_secret="wrong-secret",
    )
    await enqueue(mp_client, message("acme", "m1"), message("intruder", "x1"))
    await wait_for(lambda: receiver["status"].get("m1") == "sent")
    await wait_for_async(lambda: _has_failed(mp_kernel, "intruder"))
    assert "x1" not in receiver["status"]  # refused (401): kept and retried, never applied
    state = await mp_kernel.repos.sync_state.get("intruder")
    assert state is not None and state["last_error"] == "HTTP 401 Unauthorized"


async def _has_failed(mp: MailProxy, tenant_id: str) -> bool:
    state = await mp.repos.sync_state.get(tenant_id)
    sent = await mp.repos.messages.list(tenant_id, status="sent")
    return (
        bool(sent)
        and state is not None
        and state["failures"] > 0
        and bool(await mp.repos.events.unreported(tenant_id, 1))
    )
