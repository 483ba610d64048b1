"""What plugins implement (docs/architecture.md).

pluggy cannot await, so asynchronous work lives on the objects that registration hooks return.
Each protocol is small; the kernel owns the objects and calls ``aclose`` (when present) on
shutdown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .models import (
    Account,
    AttachmentRef,
    DeliveryEvent,
    Envelope,
    GuardVerdict,
    Message,
    Principal,
    ReportAck,
    SendResult,
    Tenant,
)

if TYPE_CHECKING:
    from quart import Request


@runtime_checkable
class Transport(Protocol):
    """Delivers one composed message for an account.

    Raises ``TransientSendError``, ``PermanentSendError`` or ``RateLimitedError``; any other
    exception is classified by the ``mailproxy_classify_error`` hook.

    Optionally, a transport also defines ``check_options(options) -> list[str]``: the problems
    of an account's ``options`` for this transport, each ``"<key>: <what is wrong>"``.
    ``accounts/add`` answers 422 with them, so that a mistake is refused when the account is
    saved instead of failing every send later.

    Two more optional methods let operators look inside (``MailProxy.pool_state`` and
    ``MailProxy.kept_message`` call them; the web dashboard shows them):

    * ``pool_state(account) -> PoolState``: the connections this process holds for the
      account's server (a pooling transport such as ``smtp``);
    * ``async kept_message(account, message) -> bytes | None``: the raw message exactly as it
      was handed over, when the transport keeps a copy (the ``file`` transport's ``.eml``
      file), else ``None``.
    """

    async def send(self, account: Account, envelope: Envelope, mime_bytes: bytes) -> SendResult: ...


@runtime_checkable
class StorageBackend(Protocol):
    """A file store mounted for a tenant (``storages`` rows name the protocol)."""

    async def read(self, path: str, max_bytes: int | None = None) -> bytes:
        """The bytes at ``path``. With ``max_bytes``, a backend may stop after ``max_bytes + 1``
        bytes, so that a caller enforcing a size cap never downloads more than that."""
        ...

    async def write(self, path: str, data: bytes) -> None: ...

    async def delete(self, path: str) -> None: ...

    async def exists(self, path: str) -> bool: ...

    async def url(self, path: str, expires_in: int | None = None) -> str | None: ...


@runtime_checkable
class AttachmentFetcher(Protocol):
    """Fetches the bytes of one attachment; raises ``AttachmentError`` (transient or not)."""

    async def fetch(self, ref: AttachmentRef, tenant: Tenant, max_bytes: int | None) -> bytes: ...


@runtime_checkable
class AuthBackend(Protocol):
    """Turns a request into a principal, or returns ``None`` to let the next backend try.

    Raise ``AuthError`` only when the request carries credentials this backend owns and they are
    wrong (an expired tenant key, say); otherwise decline with ``None``.
    """

    async def authenticate(self, request: Request) -> Principal | None: ...


@runtime_checkable
class Reporter(Protocol):
    """Delivers a tenant's events to its client application, in order."""

    async def report(self, tenant: Tenant, events: Sequence[DeliveryEvent]) -> ReportAck: ...


@runtime_checkable
class ReceiptHandler(Protocol):
    """Reads receipts (bounces, PEC receipts) from wherever they arrive and records them.

    The kernel's receipt loop calls ``poll()`` in one ``serve`` process at a time, every
    ``poll_interval`` seconds (read before every round, so a change applies without a restart)
    and at once when asked (``MailProxy.request_receipt_poll``, ``instance/run_now``). A poll
    reads its source, hands ``Receipt`` objects to ``await mp.record_receipts(...)`` and
    acknowledges at the source (advances its UID, flags ``\\Seen``) only what came back
    ``recorded``, ``duplicate``, ``unmatched`` or ``ambiguous``, i.e. once it is durable. It
    reports a failure by raising: the loop logs it, shows it as the handler's ``last_error``
    and tries again next round. An optional ``aclose()`` (sync or async) is called at shutdown.
    """

    @property
    def poll_interval(self) -> float:
        """Seconds between the end of one poll and the start of the next."""
        ...

    async def poll(self) -> None: ...


@runtime_checkable
class SendGuard(Protocol):
    """Consulted before each send (suppression lists, quotas); may refuse or postpone."""

    async def check(self, message: Message, account: Account) -> GuardVerdict: ...


class MigrationContext(Protocol):
    """Handed to a migration step: run statements in the migration's transaction."""

    dialect: str

    async def execute(self, statement: Any, values: Mapping[str, Any] | None = None) -> None: ...

    async def create_tables(self, *tables: Any) -> None: ...
