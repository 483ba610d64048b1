"""``MailProxyClient`` (blocking) and ``AsyncMailProxyClient`` (asyncio)."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any

import httpx

from ._api import AsyncRootApi, RootApi
from ._transport import (
    DEFAULT_TIMEOUT,
    DEFAULT_URL,
    headers_for,
    request_args,
    result_of,
    tls_for,
    unreachable,
)


class MailProxyClient(RootApi):
    """A blocking client of one mail-proxy instance.

    One attribute per entity, one method per route::

        with MailProxyClient("http://127.0.0.1:8000", token) as client:
            client.tenants.add("acme", name="Acme")
            client.messages.add_batch(messages=[...])

    Args:
        url: base URL of the instance.
        token: the admin token or a tenant API key (sent as ``X-API-Token``).
        timeout: seconds to wait for each answer.
        http: an ``httpx.Client`` to use instead of a new one (its base URL and headers are
            the caller's business); it is not closed by :meth:`close`.

    Raises (from every route method):
        MailProxyError: an error answer (``.status``, ``.code``, ``.detail``), or status 0 when
            the instance could not be reached.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        http: httpx.Client | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        owned = http is None
        client = http or httpx.Client(
            base_url=self.url, timeout=timeout, headers=headers_for(token), verify=tls_for(url)
        )
        base_url = self.url

        def send(method: str, path: str, params: Mapping[str, Any]) -> Any:
            try:
                response = client.request(method, path, **request_args(method, params))
            except (httpx.TransportError, httpx.InvalidURL) as exc:
                raise unreachable(base_url, exc) from exc
            return result_of(response)

        super().__init__(send)
        self._http = client
        self._owned = owned

    def request(self, method: str, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """Call any route by method and path (``"GET"``, ``"/tenants/list"``)."""
        return self._caller(method.upper(), path, params or {})

    def status(self) -> dict[str, Any]:
        """Whether the instance runs its dispatcher: ``{"ok": true, "active": bool}``."""
        result: dict[str, Any] = self.instance.status()
        return result

    def close(self) -> None:
        """Close the HTTP connections (unless the ``httpx.Client`` was passed in)."""
        if self._owned:
            self._http.close()

    def __enter__(self) -> MailProxyClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MailProxyClient({self.url!r})"


class AsyncMailProxyClient(AsyncRootApi):
    """The asyncio twin of :class:`MailProxyClient`: every route method is awaited::

    async with AsyncMailProxyClient(url, token) as client:
        tenants = await client.tenants.list()
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        owned = http is None
        client = http or httpx.AsyncClient(
            base_url=self.url, timeout=timeout, headers=headers_for(token), verify=tls_for(url)
        )
        base_url = self.url

        async def send(method: str, path: str, params: Mapping[str, Any]) -> Any:
            try:
                response = await client.request(method, path, **request_args(method, params))
            except (httpx.TransportError, httpx.InvalidURL) as exc:
                raise unreachable(base_url, exc) from exc
            return result_of(response)

        super().__init__(send)
        self._http = client
        self._owned = owned

    async def request(self, method: str, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """Call any route by method and path (``"GET"``, ``"/tenants/list"``)."""
        return await self._caller(method.upper(), path, params or {})

    async def status(self) -> dict[str, Any]:
        """Whether the instance runs its dispatcher: ``{"ok": true, "active": bool}``."""
        result: dict[str, Any] = await self.instance.status()
        return result

    async def aclose(self) -> None:
        """Close the HTTP connections (unless the ``httpx.AsyncClient`` was passed in)."""
        if self._owned:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncMailProxyClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"AsyncMailProxyClient({self.url!r})"
