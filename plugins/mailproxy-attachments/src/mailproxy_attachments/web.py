"""The ``http_url`` and ``endpoint`` fetchers (docs/attachments.md).

- ``http_url``: ``GET <storage_path>`` (an ``http://`` or ``https://`` URL), with the
  attachment's own ``auth`` when it has one.
- ``endpoint``: ``POST <client_base_url><client_attachment_path or /mail-proxy/attachments>``
  with JSON ``{"storage_path": "<value>"}`` and the tenant's ``client_auth`` (or the attachment's
  own ``auth``); the response body is the file. ``[http://host/path]params`` posts
  ``{"storage_path": "params"}`` to that URL instead of the tenant's.

Addresses are checked against the address policy (``allow_private_addresses``,
``allowed_networks``, never the service's own port) for URLs that come with the message
(``http_url`` and the ``[url]`` form), after DNS resolution and on every redirect; the tenant's own
client application is configured by the operator or the tenant and is reached like the delivery
reports are.
"""

from __future__ import annotations

import re

from mailproxy_core import AttachmentError, AttachmentRef, MailProxy, Tenant

from .httpfetch import AddressPolicy, HttpDownloader, auth_headers, own_addresses
from .service import FetchService, service_for

DEFAULT_ATTACHMENT_PATH = "/mail-proxy/attachments"
"""Where the client application serves attachments when the tenant names no path."""

EXPLICIT_ENDPOINT = re.compile(r"^\[(https?://[^\]\s]+)\](.*)$", re.DOTALL)
"""``[http://host/path]params``: the endpoint URL and the value to post."""


def _downloader(mp: MailProxy, service: FetchService) -> HttpDownloader:
    settings = service.settings
    policy = AddressPolicy(
        allow_private=settings.allow_private_addresses,
        allowed=settings.networks(),
        own_port=mp.settings.port,
        own_addresses=own_addresses(mp.settings.host),
    )
    return HttpDownloader(
        mp.http, timeout=settings.timeout, max_redirects=settings.max_redirects, policy=policy
    )


class HttpUrlFetcher:
    """Downloads ``http(s)://`` attachments."""

    def __init__(self, mp: MailProxy) -> None:
        self.service = service_for(mp)
        self.downloader = _downloader(mp, self.service)

    async def fetch(self, ref: AttachmentRef, tenant: Tenant, max_bytes: int | None) -> bytes:
        """The body of ``GET <storage_path>``; see ``httpfetch`` for the failure classes."""
        headers = auth_headers(ref.auth)

        async def load(limit: int) -> bytes:
            return await self.downloader.download(
                "GET", ref.storage_path, limit=limit, headers=headers
            )

        return await self.service.fetch(ref, tenant, max_bytes, load)

    def aclose(self) -> None:
        """Remove the shared cache's private directory (the kernel calls this at shutdown)."""
        self.service.close()


class EndpointFetcher:
    """Asks the tenant's client application (or an explicit URL) for the file."""

    def __init__(self, mp: MailProxy) -> None:
        self.service = service_for(mp)
        self.downloader = _downloader(mp, self.service)

    async def fetch(self, ref: AttachmentRef, tenant: Tenant, max_bytes: int | None) -> bytes:
        """The body of the endpoint's answer to ``{"storage_path": ...}``."""
        explicit = EXPLICIT_ENDPOINT.match(ref.storage_path)
        if explicit:
            url, value = explicit.group(1), explicit.group(2)
        else:
            url, value = endpoint_url(tenant), ref.storage_path
        headers = auth_headers(ref.auth if ref.auth is not None else tenant.client_auth)

        async def load(limit: int) -> bytes:
            return await self.downloader.download(
                "POST",
                url,
                limit=limit,
                headers=headers,
                json={"storage_path": value},
                guard=explicit is not None,
            )

        return await self.service.fetch(ref, tenant, max_bytes, load)

    def aclose(self) -> None:
        """Remove the shared cache's private directory (the kernel calls this at shutdown)."""
        self.service.close()


def endpoint_url(tenant: Tenant) -> str:
    """``<client_base_url><client_attachment_path or /mail-proxy/attachments>``."""
    if not tenant.client_base_url:
        raise AttachmentError(
            f"tenant '{tenant.id}' has no client_base_url to fetch endpoint attachments from",
            transient=False,
        )
    path = tenant.client_attachment_path or DEFAULT_ATTACHMENT_PATH
    if not path.startswith("/"):
        path = "/" + path
    return tenant.client_base_url.rstrip("/") + path
