"""Python client of the mail-proxy HTTP API.

``MailProxyClient(url, token)`` (blocking) and ``AsyncMailProxyClient`` (asyncio) carry one
attribute per entity with one method per route: ``client.tenants.get("acme")``,
``client.messages.add_batch(messages=[...])``. Errors raise :class:`MailProxyError`.
"""

from __future__ import annotations

from ._client import AsyncMailProxyClient, MailProxyClient
from ._errors import MailProxyError
from ._transport import DEFAULT_TIMEOUT, DEFAULT_URL

__all__ = [
    "DEFAULT_TIMEOUT",
    "DEFAULT_URL",
    "AsyncMailProxyClient",
    "MailProxyClient",
    "MailProxyError",
]
