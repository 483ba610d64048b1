"""One INFO log line per delivery outcome: sent, deferred, failed.

Logger ``mailproxy.delivery``, so an operator can follow the traffic (``grep``) or silence it
alone (``logging.getLogger("mailproxy.delivery").setLevel(logging.WARNING)``, or a higher
``MAILPROXY_LOG_LEVEL``). Each line names the message id, tenant, account, the server's reply or
the failure, and how long the send took; the same values go in the record's ``extra`` for the
JSON log format. Addresses are counted, not listed (they are personal data).
"""

from __future__ import annotations

import logging

from ..models import Envelope, Message, SendResult
from ..plugins.markers import hookimpl

log = logging.getLogger("mailproxy.delivery")


def _took(duration: float | None) -> str:
    return "" if duration is None else f" in {duration:.3f} s"


def _fields(message: Message, outcome: str, duration: float | None) -> dict[str, object]:
    return {
        "outcome": outcome,
        "message_id": message.id,
        "tenant_id": message.tenant_id,
        "account_id": message.account_id,
        "duration": None if duration is None else round(duration, 6),
    }


@hookimpl
def mailproxy_message_sent(
    message: Message, result: SendResult, duration: float | None, envelope: Envelope
) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    refused = f", {len(result.refused)} refused" if result.refused else ""
    log.info(
        "sent %s tenant=%s account=%s to %d recipient(s)%s: %s%s",
        message.id,
        message.tenant_id,
        message.account_id,
        len(result.accepted),
        refused,
        result.response or "accepted",
        _took(duration),
        extra={**_fields(message, "sent", duration), "reply": result.response},
    )


@hookimpl
def mailproxy_message_deferred(
    message: Message, reason: str, next_attempt_ts: int, duration: float | None
) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    log.info(
        "deferred %s tenant=%s account=%s until %d: %s%s",
        message.id,
        message.tenant_id,
        message.account_id,
        next_attempt_ts,
        reason,
        _took(duration),
        extra={**_fields(message, "deferred", duration), "reply": reason},
    )


@hookimpl
def mailproxy_message_failed(message: Message, error: str, duration: float | None) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    log.info(
        "failed %s tenant=%s account=%s: %s%s",
        message.id,
        message.tenant_id,
        message.account_id,
        error,
        _took(duration),
        extra={**_fields(message, "failed", duration), "reply": error},
    )
