"""``MAILPROXY_EE_BOUNCE__SUPPRESS=false``: bounces are recorded, nobody is suppressed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mailproxy_core import MailProxy
from mailproxy_core.testing.client import ApiClient
from mailproxy_ee_bounce.testing import (
    bounces_of,
    configure,
    fill_placeholders,
    history,
    poll,
    send,
    setup_tenant,
)
from mailproxy_ee_imap.testing import TestMailbox

RCPT = "jane.doe@example.test"
SAMPLE = Path(__file__).parent / "data" / "bounces" / "postfix_550_511_user_unknown.eml"


@pytest.fixture
def bounce_section() -> dict[str, Any]:
    return {"suppress": False, "idle": False, "imap_timeout": 5.0}


async def test_hard_bounce_is_recorded_but_suppresses_nobody(
    mp_client: ApiClient,
    mp_kernel: MailProxy,
    smtp_server: Any,
    imap_mailbox: TestMailbox,
) -> None:
    smtp = await smtp_server()
    await setup_tenant(mp_client, smtp)
    await configure(mp_client, imap_mailbox)
    sent = await send(mp_client, smtp, "m1", [RCPT])
    imap_mailbox.append(fill_placeholders(SAMPLE.read_bytes(), sent, rcpt=RCPT))
    await poll(mp_kernel)
    assert len(bounces_of(await history(mp_client, "acme", "m1"))) == 1
    assert (await mp_client.get("/suppressions/list", tenant_id="acme")).json == []
    again = await send(mp_client, smtp, "m2", [RCPT])
    assert again.rcpt_tos == [RCPT]
