"""mail-proxy plugin ``metrics``: Prometheus metrics at ``GET /metrics`` (docs/api.md).

Each app gets its own ``CollectorRegistry``. The reference's delivery counters are fed by the
``message_sent`` / ``_failed`` / ``_deferred`` events (with the recipients a send guard dropped),
the bounce and PEC receipt counters by ``receipt_received``, the queue gauges are read from
``MailProxy.queue_stats()`` at scrape time. Settings live in ``[plugins.metrics]``
(``MetricsSettings``); see the plugin's README for every metric and its labels.
"""

from __future__ import annotations

from mailproxy_core import (
    MailProxy,
    Message,
    Receipt,
    ReceiptResult,
    RouteSpec,
    SettingsSpec,
    hookimpl,
)

from .app_metrics import SETTINGS_SECTION, metrics_for
from .outcomes import SENT, counters_for_deferral, counters_for_failure
from .route import METRICS_PATH, build_blueprint
from .settings import MetricsSettings

__version__ = "0.1.0"

__all__ = ["MetricsSettings"]


@hookimpl
def mailproxy_register_settings() -> list[SettingsSpec]:
    """The ``[plugins.metrics]`` section."""
    return [SettingsSpec(SETTINGS_SECTION, MetricsSettings)]


@hookimpl
def mailproxy_register_routes() -> list[RouteSpec]:
    """``GET /metrics``, answered without credentials."""
    return [RouteSpec("metrics", build_blueprint(), public_paths=(METRICS_PATH,))]


@hookimpl
def mailproxy_startup(mp: MailProxy) -> None:
    """Create this app's registry before the dispatcher runs."""
    metrics_for(mp)


@hookimpl
def mailproxy_message_sent(
    mp: MailProxy, message: Message, duration: float | None, suppressed: tuple[str, ...]
) -> None:
    """Count a sent message, how long its transport took and the recipients a guard dropped."""
    metrics = metrics_for(mp)
    metrics.count((SENT,), message)
    metrics.observe_send(message, "sent", duration)
    metrics.receipts.add_suppressed(message.tenant_id, suppressed)


@hookimpl
def mailproxy_message_failed(
    mp: MailProxy,
    message: Message,
    error: str,
    duration: float | None,
    suppressed: tuple[str, ...],
) -> None:
    """Count a message that ended in error (and a rate-limit rejection as rate limited); a
    message whose every recipient a guard dropped counts them as suppressed too."""
    metrics = metrics_for(mp)
    metrics.count(counters_for_failure(error), message)
    metrics.observe_send(message, "error", duration)
    metrics.receipts.add_suppressed(message.tenant_id, suppressed)


@hookimpl
def mailproxy_message_deferred(
    mp: MailProxy, message: Message, reason: str, duration: float | None
) -> None:
    """Count a deferral (and a ``rate_limit`` deferral as rate limited)."""
    metrics = metrics_for(mp)
    metrics.count(counters_for_deferral(reason), message)
    metrics.observe_send(message, "deferred", duration)


@hookimpl
def mailproxy_receipt_received(mp: MailProxy, receipt: Receipt, result: ReceiptResult) -> None:
    """Count a recorded bounce (by type) or PEC receipt (by event type)."""
    metrics_for(mp).receipts.add_receipt(receipt, result)
