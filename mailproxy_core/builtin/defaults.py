"""The kernel's default decisions, registered ``trylast`` so that any plugin answering wins."""

from __future__ import annotations

import random
from collections.abc import Sequence

from ..errors import AttachmentError, PermanentSendError, RateLimitedError, TransientSendError
from ..models import Account, AttachmentRef, ErrorClass, Message, Tenant
from ..plugins.markers import hookimpl

JITTER = 0.10
"""Retry delays vary by ±10 % so that messages failing together do not retry together."""


@hookimpl(trylast=True)
def mailproxy_select_transport(account: Account, message: Message) -> str | None:
    """The account's own ``transport`` field."""
    return account.transport


def infer_fetch_mode(ref: AttachmentRef, storage_names: frozenset[str]) -> str:
    """Fetch mode of an attachment: ``fetch_mode``, else by the path's shape."""
    if ref.fetch_mode:
        return ref.fetch_mode
    path = ref.storage_path
    if path.startswith("base64:"):
        return "base64"
    if path.startswith(("http://", "https://")):
        return "http_url"
    if path.startswith("/"):
        return "filesystem"
    mount, sep, _rest = path.partition(":")
    if sep and mount in storage_names:
        return "storage"
    return "endpoint"


@hookimpl(trylast=True)
def mailproxy_resolve_fetcher(
    ref: AttachmentRef, tenant: Tenant, storage_names: frozenset[str]
) -> str | None:
    """Honour ``fetch_mode``, otherwise infer it from the path (docs/attachments.md)."""
    return infer_fetch_mode(ref, storage_names)


@hookimpl(trylast=True)
def mailproxy_classify_error(error: BaseException) -> ErrorClass | None:
    """Send errors by their class, attachment errors by their flag, network trouble transient."""
    if isinstance(error, RateLimitedError):
        return ErrorClass.RATE_LIMITED
    if isinstance(error, TransientSendError):
        return ErrorClass.TRANSIENT
    if isinstance(error, PermanentSendError):
        return ErrorClass.PERMANENT
    if isinstance(error, AttachmentError):
        return ErrorClass.TRANSIENT if error.transient else ErrorClass.PERMANENT
    if isinstance(error, (TimeoutError, ConnectionError)):
        return ErrorClass.TRANSIENT
    return ErrorClass.PERMANENT


@hookimpl(trylast=True)
def mailproxy_retry_delay(
    retry: int, error: BaseException | None, message: Message, delays: Sequence[float]
) -> float | None:
    """``delays[min(retry-1, len-1)]`` with ±10 % jitter (docs/dispatch.md)."""
    if not delays:
        return 0.0
    base = float(delays[min(max(retry, 1) - 1, len(delays) - 1)])
    return base * random.uniform(1 - JITTER, 1 + JITTER)
