"""HTTP downloads for the ``http_url`` and ``endpoint`` fetchers.

Requests go through the kernel's shared ``httpx`` client (``mp.http``). Redirects are followed
here, at most ``max_redirects``, so that each hop is checked against the address policy and
credentials are not sent to another origin. Bodies are streamed and abandoned as soon as they
pass the size cap. The whole download, redirects included, is bounded by ``timeout``.

Failures: timeouts, connection errors, HTTP 5xx, 408, 425 and 429 are transient (the message is
retried); HTTP 401, 403, 404, 410 and every other 4xx, too many redirects, bad URLs, refused
addresses and oversized bodies are permanent. Failure texts show the URL without its query
string (signed URLs carry credentials there).
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import httpx

from mailproxy_core import AttachmentError

from .service import too_large

TRANSIENT_STATUSES = frozenset({408, 425, 429})
"""4xx answers that mean "later" rather than "never"."""


def display_url(url: str | httpx.URL) -> str:
    """``scheme://host[:port]/path`` without query, fragment or credentials."""
    parsed = httpx.URL(str(url))
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port}{parsed.path}"


def auth_headers(auth: Mapping[str, Any] | None) -> dict[str, str]:
    """Headers for ``{"method": "bearer", "token"}``, ``{"method": "basic", "user", "password"}``
    or ``{"method": "none"}`` (docs/reports.md); an unknown method is a permanent error."""
    if not auth:
        return {}
    method = str(auth.get("method") or "none").lower()
    if method == "none":
        return {}
    if method == "bearer":
        return {"Authorization": f"Bearer {auth.get('token') or ''}"}
    if method == "basic":
        pair = f"{auth.get('user') or ''}:{auth.get('password') or ''}"
        return {"Authorization": f"Basic {base64.b64encode(pair.encode()).decode()}"}
    raise AttachmentError(
        f"unknown auth method '{method}' (use bearer, basic or none)", transient=False
    )


Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class AddressPolicy:
    """Which addresses a URL that came with a message may reach.

    Public addresses are allowed; non-public ones (loopback, private, link-local, shared,
    reserved, multicast) only when ``allow_private`` is set or they fall in ``allowed``; the
    service's own port on its own addresses (``own_addresses``, loopback and the unspecified
    address) never, so that a message cannot mail out the service's own API.
    """

    allow_private: bool = False
    allowed: tuple[Network, ...] = ()
    own_port: int | None = None
    own_addresses: frozenset[Address] = frozenset()

    def refusal(self, address: Address, port: int) -> str | None:
        """Why ``address:port`` may not be fetched, or ``None``."""
        mapped = getattr(address, "ipv4_mapped", None)
        address = mapped or address
        own = address.is_loopback or address.is_unspecified or address in self.own_addresses
        if own and port == self.own_port:
            return "it is this service's own address"
        if address.is_global or self.allow_private:
            return None
        if any(address in network for network in self.allowed):
            return None
        return (
            "it is not a public address (loopback, private, link-local or reserved); "
            "operators allow intranet servers with allowed_networks"
        )


def own_addresses(host: str) -> frozenset[Address]:
    """The addresses this service answers on: its listen address and its host name's addresses."""
    found: set[Address] = set()
    for name in (host, socket.gethostname()):
        try:
            infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            continue
        for info in infos:
            try:
                found.add(ipaddress.ip_address(str(info[4][0]).split("%")[0]))
            except ValueError:
                continue
    return frozenset(found)


async def check_address(url: httpx.URL, policy: AddressPolicy) -> None:
    """Refuse a URL whose host is, or resolves to, an address ``policy`` refuses (permanent).

    Every address the name resolves to must be allowed. The refusal text is the same whatever
    listens (or not) on the address: nothing is sent to it.
    """
    host = url.host
    if not host:
        raise AttachmentError(f"URL {display_url(url)} has no host", transient=False)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except socket.gaierror as err:
            raise AttachmentError(f"cannot resolve {host}: {err}", transient=True) from err
        # IPv6 link-local answers carry a scope ("fe80::1%eth0"), which ip_address refuses.
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    for address in addresses:
        reason = policy.refusal(address, port)
        if reason is not None:
            raise AttachmentError(f"refused to fetch {display_url(url)}: {reason}", transient=False)


class HttpDownloader:
    """Streams one HTTP resource with redirects, a size cap and an overall timeout."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        timeout: float,
        max_redirects: int,
        policy: AddressPolicy,
    ) -> None:
        self.client = client
        self.timeout = timeout
        self.max_redirects = max_redirects
        self.policy = policy

    async def download(
        self,
        method: str,
        url: str,
        *,
        limit: int,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        guard: bool = True,
    ) -> bytes:
        """The body of a 2xx answer to ``method url`` (see the module doc for failures).

        ``guard``: check every hop against the address policy (URLs that came with a message).
        """
        try:
            async with asyncio.timeout(self.timeout):
                return await self._follow(
                    method,
                    url,
                    limit,
                    dict(headers or {}),
                    json,
                    guard,
                )
        except TimeoutError as err:
            raise AttachmentError(
                f"{display_url(url)} did not answer within {self.timeout:g} s", transient=True
            ) from err

    async def _follow(
        self,
        method: str,
        url: str,
        limit: int,
        headers: dict[str, str],
        json: Any,
        guard: bool,
    ) -> bytes:
        target = _parse(url)
        for hop in range(self.max_redirects + 1):
            if guard:
                await check_address(target, self.policy)
            try:
                async with self.client.stream(
                    method,
                    target,
                    headers=headers,
                    json=json,
                    timeout=self.timeout,
                    follow_redirects=False,
                ) as response:
                    if response.is_redirect:
                        if hop == self.max_redirects:
                            raise AttachmentError(
                                f"more than {self.max_redirects} redirects from {display_url(url)}",
                                transient=False,
                            )
                        following = _parse(urljoin(str(target), response.headers["location"]))
                        if response.status_code == 303 or (
                            response.status_code in (301, 302) and method != "GET"
                        ):
                            method, json = "GET", None
                        if following.netloc != target.netloc or following.scheme != target.scheme:
                            headers.pop("Authorization", None)
                        target = following
                        continue
                    _check_status(response)
                    return await _read_capped(response, limit)
            except httpx.UnsupportedProtocol as err:
                raise AttachmentError(
                    f"unsupported URL {display_url(target)}", transient=False
                ) from err
            except httpx.TimeoutException as err:
                raise AttachmentError(
                    f"{display_url(target)} timed out ({type(err).__name__})", transient=True
                ) from err
            except httpx.TransportError as err:
                raise AttachmentError(
                    f"cannot fetch {display_url(target)}: {type(err).__name__}: {err}",
                    transient=True,
                ) from err
        raise AssertionError("unreachable: the loop returns or raises")


def _parse(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as err:
        raise AttachmentError(f"invalid URL ({err})", transient=False) from err
    if parsed.scheme not in ("http", "https"):
        raise AttachmentError(f"unsupported URL scheme '{parsed.scheme}'", transient=False)
    return parsed


def _check_status(response: httpx.Response) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    text = f"HTTP {status} {response.reason_phrase} from {display_url(response.url)}".rstrip()
    transient = status >= 500 or status in TRANSIENT_STATUSES
    raise AttachmentError(text, transient=transient)


async def _read_capped(response: httpx.Response, limit: int) -> bytes:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)
