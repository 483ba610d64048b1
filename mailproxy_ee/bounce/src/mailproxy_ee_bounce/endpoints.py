"""Routes of the plugin: the bounce configuration (``instance/*``) and ``suppressions/*``."""

from __future__ import annotations

from email.errors import HeaderParseError
from email.headerregistry import Address
from email.utils import getaddresses
from typing import Any

from mailproxy_core import (
    POST,
    Endpoint,
    InvalidInput,
    NotFound,
    admin_only,
    tenant_scoped,
)

from .handler import HANDLER_NAME
from .runtime import runtime_for
from .store import BounceConfig, BounceStore, normalize_address

MAX_LIST = 10_000


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(
        f"{field}: {message}", errors=[{"field": field, "message": message, "type": "value"}]
    )


def valid_address(value: str, field: str) -> str:
    """The addr-spec of ``value``, which must be exactly one address with a local part and a
    dotted domain (a display name is allowed).

    Raises:
        InvalidInput: anything else (422).
    """
    parsed = getaddresses([value])
    if len(parsed) != 1 or not parsed[0][1]:
        raise _invalid(field, f"invalid address {value!r}")
    addr = parsed[0][1]
    try:
        address = Address(addr_spec=addr)
    except (HeaderParseError, ValueError, IndexError):
        raise _invalid(field, f"invalid address {value!r}") from None
    if not address.username or "." not in address.domain:
        raise _invalid(field, f"invalid address {value!r}")
    return addr


def config_view(config: BounceConfig, default_interval: int) -> dict[str, Any]:
    """The API object of ``get_bounce_config``: flat, integers for port and interval, never the
    password."""
    return {
        "enabled": config.enabled,
        "imap_host": config.imap_host,
        "imap_port": int(config.imap_port),
        "imap_ssl": config.imap_ssl,
        "imap_user": config.imap_user,
        "imap_folder": config.imap_folder,
        "poll_interval": int(config.poll_interval or default_interval),
        "return_path": config.return_path,
        "has_imap_password": bool(config.imap_password),
        "last_poll_ts": config.last_poll_ts,
        "last_error": config.last_error,
    }


class BounceInstanceEndpoint(Endpoint):
    """The bounce mailbox configuration (instance admin only)."""

    @admin_only
    async def get_bounce_config(self) -> dict[str, Any]:
        """The bounce mailbox configuration and the state of its last poll (no password)."""
        runtime = runtime_for(self.mp)
        config = await runtime.store.config()
        return config_view(config, runtime.settings.poll_interval)

    @admin_only
    @POST
    async def set_bounce_config(
        self,
        enabled: bool | None = None,
        imap_host: str | None = None,
        imap_port: int | None = None,
        imap_ssl: bool | None = None,
        imap_user: str | None = None,
        imap_password: str | None = None,
        imap_folder: str | None = None,
        poll_interval: int | None = None,
        return_path: str | None = None,
    ) -> dict[str, Any]:
        """Change the bounce mailbox configuration; applied to the running poller at once.

        Fields left out keep their value; ``imap_password: ""`` clears the password and
        ``return_path: ""`` the return path. The password is stored encrypted and never shown.

        Args:
            enabled: read the mailbox and use the return path (needs ``imap_host``).
            imap_host: the IMAP server.
            imap_port: its port (1-65535); 993 when never set.
            imap_ssl: true = implicit TLS; false = plain IMAP, with STARTTLS when offered.
            imap_user: the login.
            imap_password: the password ("" clears it).
            imap_folder: the folder that receives the notices (default INBOX).
            poll_interval: seconds between two reads (at least 1).
            return_path: envelope sender of every message without its own return_path, so
                non-delivery reports reach the mailbox ("" clears it).
        """
        runtime = runtime_for(self.mp)
        current = await runtime.store.config()
        fields: dict[str, Any] = {}
        if enabled is not None:
            fields["enabled"] = enabled
        if imap_host is not None:
            host = imap_host.strip()
            if any(c.isspace() or ord(c) < 32 for c in host) or "/" in host:
                raise _invalid("imap_host", f"invalid host name {imap_host!r}")
            fields["imap_host"] = host or None
        if imap_port is not None:
            if not 1 <= imap_port <= 65535:
                raise _invalid("imap_port", "must be between 1 and 65535")
            fields["imap_port"] = imap_port
        if imap_ssl is not None:
            fields["imap_ssl"] = imap_ssl
        if imap_user is not None:
            fields["imap_user"] = imap_user or None
        if imap_password is not None:
            fields["imap_password"] = (
                self.mp.secrets.encrypt(imap_password) if imap_password else None
            )
        if imap_folder is not None:
            if not imap_folder.strip():
                raise _invalid("imap_folder", "must not be empty")
            fields["imap_folder"] = imap_folder
        if poll_interval is not None:
            if poll_interval < 1:
                raise _invalid("poll_interval", "must be an integer of at least 1 second")
            fields["poll_interval"] = poll_interval
        if return_path is not None:
            fields["return_path"] = (
                valid_address(return_path, "return_path") if return_path.strip() else None
            )
        will_enable = fields.get("enabled", current.enabled)
        will_host = fields.get("imap_host", current.imap_host)
        if will_enable and not will_host:
            raise _invalid("imap_host", "required to enable the bounce mailbox")
        if fields:
            await runtime.store.save_config(fields)
        await runtime.refresh()
        self.mp.request_receipt_poll(HANDLER_NAME)
        return config_view(await runtime.store.config(), runtime.settings.poll_interval)

    @admin_only
    @POST
    async def reload_bounce(self) -> dict[str, Any]:
        """Reconnect the bounce poller with the stored configuration and poll at once."""
        runtime = runtime_for(self.mp)
        await runtime.store.request_reload()
        await runtime.refresh()
        self.mp.request_receipt_poll(HANDLER_NAME)
        return {"ok": True}


class SuppressionsEndpoint(Endpoint):
    """A tenant's suppression list: addresses its messages are no longer sent to."""

    async def _store_for(self, tenant_id: str) -> BounceStore:
        if await self.mp.tenant(tenant_id) is None:
            raise NotFound(f"tenant {tenant_id!r} not found")
        return runtime_for(self.mp).store

    @tenant_scoped
    async def list(
        self,
        tenant_id: str,
        limit: int = 1000,
        offset: int = 0,
        address: str | None = None,
    ) -> list[dict[str, Any]]:
        """The tenant's suppressed addresses, newest first.

        Args:
            tenant_id: the tenant.
            limit: at most this many entries (1-10000).
            offset: skip this many entries first.
            address: only this address.
        """
        if not 1 <= limit <= MAX_LIST:
            raise _invalid("limit", f"must be between 1 and {MAX_LIST}")
        if offset < 0:
            raise _invalid("offset", "must not be negative")
        store = await self._store_for(tenant_id)
        entries = await store.suppressions(tenant_id, limit=limit, offset=offset, address=address)
        return [entry.view() for entry in entries]

    @tenant_scoped
    @POST
    async def add(self, tenant_id: str, address: str, reason: str = "manual") -> dict[str, Any]:
        """Suppress an address for the tenant (an address already listed keeps its entry).

        Args:
            tenant_id: the tenant.
            address: the recipient address to stop sending to.
            reason: why (default ``manual``).
        """
        addr = valid_address(address, "address")
        if not reason.strip():
            raise _invalid("reason", "must not be empty")
        store = await self._store_for(tenant_id)
        entry = await store.suppress(tenant_id, addr, reason.strip(), None)
        return entry.view()

    @tenant_scoped
    @POST
    async def delete(self, tenant_id: str, address: str) -> dict[str, Any]:
        """Remove an address from the tenant's suppression list.

        Args:
            tenant_id: the tenant.
            address: the address to send to again.
        """
        store = await self._store_for(tenant_id)
        removed = await store.unsuppress(tenant_id, normalize_address(address))
        return {"ok": True, "removed": removed}
