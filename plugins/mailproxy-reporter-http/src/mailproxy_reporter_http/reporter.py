"""``HttpReporter``: POSTs a tenant's delivery report to its client application (docs/reports.md).

``POST <client_base_url><client_sync_path or /mail-proxy/sync>`` with the JSON body of
``entries.report_body``, the tenant's ``client_auth`` (bearer, basic or none) and, when the tenant
has a ``report_signing_secret``, an ``X-Mailproxy-Signature`` over the exact bytes sent. Any 2xx
answer acknowledges the report; its ``next_sync_after`` (unix seconds), when present, is handed
back to the kernel as the client's do-not-disturb deadline. Anything else -- another status, a
timeout, a connection error -- is a failed report: the kernel keeps the events and retries with
back-off. A tenant without ``client_base_url`` has nowhere to be reported to: its reports are
acknowledged without a request, so its events count as reported (retention and
``messages/cleanup`` work) and no failure is ever logged for it.

Failure texts go to ``tenant_sync_state.last_error`` and the log, so they never include URLs,
headers or answer bodies (which could carry credentials).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from mailproxy_core import DeliveryEvent, MailProxy, ReportAck, Tenant

from .entries import SIGNATURE_HEADER, report_body, signature
from .settings import ReporterHttpSettings

DEFAULT_SYNC_PATH = "/mail-proxy/sync"
"""Where reports go when the tenant names no ``client_sync_path``."""

USER_AGENT = "mail-proxy-reporter"


def sync_url(tenant: Tenant) -> str | None:
    """The tenant's report URL, or ``None`` when it has no ``client_base_url``."""
    if not tenant.client_base_url:
        return None
    path = tenant.client_sync_path or DEFAULT_SYNC_PATH
    if not path.startswith("/"):
        path = "/" + path
    return tenant.client_base_url.rstrip("/") + path


def auth_headers(client_auth: Mapping[str, Any] | None) -> dict[str, str]:
    """The ``Authorization`` header for a tenant's ``client_auth`` (none for ``none``)."""
    method = (client_auth or {}).get("method", "none")
    if method == "bearer" and client_auth and client_auth.get("token"):
        return {"Authorization": f"Bearer {client_auth['token']}"}
    if method == "basic" and client_auth and client_auth.get("user") is not None:
        pair = f"{client_auth['user']}:{client_auth.get('password') or ''}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}
    return {}


class HttpReporter:
    """The ``http`` reporter: one POST per report, on the kernel's shared HTTP client."""

    def __init__(self, mp: MailProxy, settings: ReporterHttpSettings) -> None:
        self.mp = mp
        self.settings = settings
        self.max_batch = settings.batch_size
        """Most events the kernel hands to one ``report`` call."""
        self._timeout = httpx.Timeout(settings.timeout, connect=settings.connect_timeout)

    @classmethod
    def from_kernel(cls, mp: MailProxy) -> HttpReporter:
        """Build it from the kernel's ``reporter_http`` settings."""
        settings = mp.plugin_settings("reporter_http")
        assert isinstance(settings, ReporterHttpSettings)
        return cls(mp, settings)

    async def report(self, tenant: Tenant, events: Sequence[DeliveryEvent]) -> ReportAck:
        """POST ``events`` (possibly none: an idle poll) to the tenant's client application."""
        url = sync_url(tenant)
        if url is None:
            return ReportAck(ok=True, detail="no client_base_url: nothing to report to")
        body = report_body(events)
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        headers.update(auth_headers(tenant.client_auth))
        if tenant.report_signing_secret:
            ts = int(time.time())
            headers[SIGNATURE_HEADER] = signature(tenant.report_signing_secret, body, ts)
        try:
            response = await self.mp.http.post(
                url, content=body, headers=headers, timeout=self._timeout
            )
        except httpx.TimeoutException as exc:
            return ReportAck(ok=False, detail=f"no answer in time ({type(exc).__name__})")
        except httpx.HTTPError as exc:
            return ReportAck(ok=False, detail=f"{type(exc).__name__}: {_reason(exc)}")
        if not response.is_success:
            phrase = response.reason_phrase or ""
            return ReportAck(ok=False, detail=f"HTTP {response.status_code} {phrase}".rstrip())
        return ReportAck(ok=True, next_sync_after=_next_sync_after(response))


def _reason(exc: httpx.HTTPError) -> str:
    # httpx may name the request URL in its messages: keep the cause only.
    cause = exc.__cause__ or exc.__context__
    return str(cause) if cause is not None else "request failed"


def _next_sync_after(response: httpx.Response) -> float | None:
    try:
        answer = response.json()
    except ValueError:
        return None
    value = answer.get("next_sync_after") if isinstance(answer, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
