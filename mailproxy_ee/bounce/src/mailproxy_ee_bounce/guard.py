"""The suppression guard: messages are sent without the recipients their tenant suppressed."""

from __future__ import annotations

from collections.abc import Iterable
from email.utils import getaddresses
from typing import TYPE_CHECKING, Any

from mailproxy_core import GuardVerdict

from .store import BounceStore

if TYPE_CHECKING:
    from mailproxy_core import Account, MailProxy, Message


def message_recipients(payload: Any) -> list[str]:
    """Every ``to``, ``cc`` and ``bcc`` address of a message payload (strings or lists)."""
    values: list[str] = []
    for field in ("to", "cc", "bcc"):
        value = payload.get(field)
        if isinstance(value, str):
            values.append(value)
        elif isinstance(value, Iterable):
            values.extend(str(v) for v in value if v)
    return [address for _, address in getaddresses(values) if address]


class SuppressionGuard:
    """Drops the recipients on the message tenant's suppression list (the kernel sends to the
    others, lists the dropped ones in the ``sent`` event's ``metadata.suppressed``, and ends a
    message left without recipients in ``error``)."""

    def __init__(self, mp: MailProxy) -> None:
        self.store = BounceStore(mp)

    @classmethod
    def from_kernel(cls, mp: MailProxy) -> SuppressionGuard:
        """Build it for kernel ``mp``."""
        return cls(mp)

    async def check(self, message: Message, account: Account) -> GuardVerdict:
        """Allow the message, minus its suppressed recipients."""
        recipients = message_recipients(message.payload)
        suppressed = await self.store.suppressed_among(message.tenant_id, recipients)
        if not suppressed:
            return GuardVerdict(allow=True)
        dropped = tuple(dict.fromkeys(a for a in recipients if a.strip().lower() in suppressed))
        return GuardVerdict(allow=True, drop_recipients=dropped)
