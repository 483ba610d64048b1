"""End-to-end mail of one tenant for tests of attachment fetchers and storage backends.

``Mail`` drives one tenant end to end through the API of a test instance: it adds storage
mounts, enqueues messages with attachments, delivers them with ``dispatch_now`` and reads back
statuses, histories and the MIME messages a real SMTP sink (``mailproxy_core.testing.smtp``)
received. ``await Mail.start(mp_client, mp_kernel, server)`` creates tenant ``acme`` with
account ``main`` pointing at the sink. ``SMTP_TEST_SECTION`` is a ``[plugins.smtp]`` section
with short timeouts for such an instance::

    @pytest.fixture
    async def mail(mp_client, mp_kernel, smtp_server):
        return await Mail.start(mp_client, mp_kernel, await smtp_server())

Needs ``aiosmtpd`` (a test dependency), like ``mailproxy_core.testing.smtp``.
"""

from __future__ import annotations

import email
import email.message
import email.policy
from typing import Any, cast

from ..kernel import MailProxy
from .client import ApiClient
from .dispatch import dispatch_now
from .smtp import ScriptedServer

SMTP_TEST_SECTION: dict[str, Any] = {
    "local_hostname": "client.test",
    "connect_timeout": 2.0,
    "command_timeout": 2.0,
    "data_timeout": 2.0,
    "close_timeout": 0.5,
}
"""``[plugins.smtp]`` of a test instance: a fixed HELO name and short timeouts."""

TENANT = "acme"
ACCOUNT = "main"


class Mail:
    """Enqueue, deliver and inspect messages of tenant ``acme`` (account ``main``)."""

    def __init__(self, client: ApiClient, mp: MailProxy, server: ScriptedServer) -> None:
        self.client = client
        self.mp = mp
        self.server = server

    @classmethod
    async def start(
        cls, client: ApiClient, mp: MailProxy, server: ScriptedServer, **tenant_fields: Any
    ) -> Mail:
        """Add tenant ``acme`` (with ``tenant_fields``) and its account ``main`` on ``server``."""
        added = await client.post("/tenants/add", id=TENANT, **tenant_fields)
        assert added.status == 200, added.json
        account = await client.post(
            "/accounts/add",
            id=ACCOUNT,
            tenant_id=TENANT,
            host="127.0.0.1",
            port=server.port,
            use_tls=False,
        )
        assert account.status == 200, account.json
        return cls(client, mp, server)

    async def mount(self, name: str, protocol: str, config: dict[str, Any]) -> None:
        """Add the storage mount ``name`` to the tenant (``storages/add``)."""
        added = await self.client.post(
            "/storages/add", tenant_id=TENANT, name=name, protocol=protocol, config=config
        )
        assert added.status == 200, added.json
        self.mp.directory_changed()

    @staticmethod
    def message(mid: str, *attachments: dict[str, Any], **fields: Any) -> dict[str, Any]:
        """A message of the tenant's account with ``attachments`` (``fields`` override)."""
        values: dict[str, Any] = {
            "id": mid,
            "tenant_id": TENANT,
            "account_id": ACCOUNT,
            "from": "shop@acme.example",
            "to": "bob@example.com",
            "subject": f"Order {mid}",
            "body": "Your invoice.",
            "attachments": list(attachments),
        }
        values.update(fields)
        return values

    async def deliver(self, *messages: dict[str, Any]) -> None:
        """Enqueue ``messages`` and let the dispatcher work until it is idle."""
        response = await self.client.post("/messages/add_batch", messages=list(messages))
        assert response.status == 200 and response.json["queued"] == len(messages), response.json
        await dispatch_now(self.mp)

    async def status(self, mid: str, tenant_id: str = TENANT) -> dict[str, Any]:
        """``messages/get`` of ``mid``, history included."""
        got = await self.client.get(
            "/messages/get", message_id=mid, tenant_id=tenant_id, include_history=True
        )
        assert got.status == 200, got.json
        result: dict[str, Any] = got.json
        return result

    async def history(self, mid: str, tenant_id: str = TENANT) -> list[tuple[str, str | None]]:
        """``(event_type, description)`` of each event of ``mid``'s history."""
        status = await self.status(mid, tenant_id)
        return [(e["event_type"], e["description"]) for e in status["history"]]

    def received(self) -> list[email.message.EmailMessage]:
        """Every message the SMTP sink accepted, parsed."""
        return [
            cast(
                email.message.EmailMessage,
                email.message_from_bytes(m.content, policy=email.policy.default),
            )
            for m in self.server.handler.messages
        ]

    def attachments_of(self, index: int = -1) -> list[tuple[str, str, bytes]]:
        """(filename, content type, bytes) of each attachment of a received message."""
        found = []
        for part in self.received()[index].iter_attachments():
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes), part.get_content_type()
            found.append((part.get_filename() or "", part.get_content_type(), payload))
        return found
