"""The metrics of one app: a private ``CollectorRegistry`` per kernel, never the global one.

``metrics_for(mp)`` returns the ``AppMetrics`` of a kernel, creating it on first use (the
``startup`` hook calls it, so it exists before the dispatcher runs). They are kept in a
``WeakKeyDictionary`` keyed by the kernel: two apps in one process have independent counters,
and an app's metrics go away with its kernel.

Counters and the duration histogram are fed by the event hooks and only touch memory. Everything
that needs the database — tenant names, the queue gauges — is read when ``/metrics`` is scraped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from weakref import WeakKeyDictionary

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from mailproxy_core import MailProxy, Message, PluginError

from .durations import DurationHistogram
from .names import TenantNames
from .outcomes import COUNTERS, CounterInfo, OutcomeCounters
from .receipts import BOUNCES, PEC_RECEIPTS, SUPPRESSED, ReceiptCounters
from .settings import MetricsSettings

log = logging.getLogger(__name__)

SETTINGS_SECTION = "metrics"
"""The plugin's name, and so its settings section."""

OUTCOME_LABELS = ("tenant_id", "tenant_name", "account_id", "account_name")
"""Labels of the reference's counters (docs/api.md)."""

DURATION_LABELS = ("tenant_id", "account_id", "outcome")

BOUNCE_LABELS = ("tenant_id", "bounce_type")
SUPPRESSED_LABELS = ("tenant_id",)
PEC_LABELS = ("tenant_id", "event")

STATUSES = ("pending", "deferred", "sending", "sent", "error")
"""Message statuses always present in ``gmp_messages`` (0 when the queue has none)."""


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    """What ``MailProxy.queue_stats()`` answered at the last scrape."""

    by_status: Mapping[str, int]
    oldest_ready_age: float


class AppMetrics:
    """Counters, histogram and queue gauges of one kernel, exposed by its own registry."""

    def __init__(self, settings: MetricsSettings) -> None:
        self.settings = settings
        self.outcomes = OutcomeCounters()
        self.receipts = ReceiptCounters()
        self.durations = DurationHistogram(settings.duration_buckets)
        self.tenant_names = TenantNames(enabled=settings.tenant_names, ttl=settings.tenant_name_ttl)
        self.queue: QueueSnapshot | None = None
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))

    # -- fed by the event hooks ----------------------------------------------------------------

    def count(self, counters: tuple[CounterInfo, ...], message: Message) -> None:
        """Count one outcome of ``message`` in each of ``counters``."""
        self.outcomes.add(counters, message)

    def observe_send(self, message: Message, outcome: str, seconds: float | None) -> None:
        """Record an attempt's duration; ``None`` (it never reached a transport) is skipped."""
        if seconds is not None:
            self.durations.observe(message.tenant_id, message.account_id or "", outcome, seconds)

    # -- read at scrape time -------------------------------------------------------------------

    async def scrape(self, mp: MailProxy) -> bytes:
        """Refresh what lives in the database, then render the text exposition format.

        A database that does not answer costs the queue gauges and fresh tenant names of this
        scrape (logged), not the counters: they are in memory and still exposed.
        """
        try:
            await self.tenant_names.refresh(mp, self._tenant_ids())
        except Exception:
            log.exception("metrics: could not read tenant names; labelling with known names")
        try:
            stats = await mp.queue_stats()
            self.queue = QueueSnapshot(
                by_status={str(k): int(v) for k, v in stats["by_status"].items()},
                oldest_ready_age=float(stats["oldest_ready_age"]),
            )
        except Exception:
            self.queue = None
            log.exception("metrics: could not read the queue; queue gauges left out")
        return generate_latest(self.registry)

    def _tenant_ids(self) -> set[str]:
        return self.outcomes.tenant_ids() | self.durations.tenant_ids()

    # -- metric families -----------------------------------------------------------------------

    def families(self) -> Iterator[Metric]:
        """Every metric family of the app, from the current counts and the last queue read."""
        names = self.tenant_names
        for info in COUNTERS:
            family = CounterMetricFamily(info.name, info.help, labels=OUTCOME_LABELS)
            for tenant_id, account_id, count in self.outcomes.series(info):
                # The kernel knows no account name: the reference labels it with the id too.
                labels = (tenant_id, names.name_of(tenant_id), account_id, account_id)
                family.add_metric(labels, count)
            yield family

        histogram = HistogramMetricFamily(
            "gmp_send_duration_seconds",
            "Seconds Transport.send took, per attempt that reached a transport (connection "
            "from the pool, the SMTP dialogue, the server's answer).",
            labels=DURATION_LABELS,
        )
        for series_labels, buckets, total in self.durations.series():
            histogram.add_metric(series_labels, buckets, total)
        yield histogram

        receipts = self.receipts
        for info, label_names, series in (
            (BOUNCES, BOUNCE_LABELS, receipts.bounce_series()),
            (SUPPRESSED, SUPPRESSED_LABELS, receipts.suppressed_series()),
            (PEC_RECEIPTS, PEC_LABELS, receipts.pec_series()),
        ):
            family = CounterMetricFamily(info.name, info.help, labels=label_names)
            for values, count in series:
                family.add_metric(values, count)
            yield family

        if self.queue is not None:
            yield from _queue_families(self.queue)


def _queue_families(queue: QueueSnapshot) -> Iterator[Metric]:
    by_status = queue.by_status
    pending = by_status.get("pending", 0) + by_status.get("deferred", 0)
    yield GaugeMetricFamily(
        "gmp_pending_messages", "Messages waiting to be sent: pending plus deferred.", pending
    )
    messages = GaugeMetricFamily(
        "gmp_messages", "Messages in the queue by status.", labels=["status"]
    )
    for status in sorted(set(STATUSES) | set(by_status)):
        messages.add_metric([status], by_status.get(status, 0))
    yield messages
    yield GaugeMetricFamily(
        "gmp_queue_oldest_age_seconds",
        "Age in seconds of the oldest message ready to be sent now (0 when none is).",
        queue.oldest_ready_age,
    )


class _Collector:
    """Adapts ``AppMetrics`` to prometheus_client's collector protocol."""

    def __init__(self, metrics: AppMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return list(self._metrics.families())


_BY_KERNEL: WeakKeyDictionary[MailProxy, AppMetrics] = WeakKeyDictionary()


def metrics_for(mp: MailProxy) -> AppMetrics:
    """The metrics of kernel ``mp``, created with its ``[plugins.metrics]`` settings on first use.

    Raises ``PluginError`` when the ``metrics`` settings section belongs to another model (the
    plugin registered under another name).
    """
    metrics = _BY_KERNEL.get(mp)
    if metrics is None:
        settings = mp.plugin_settings(SETTINGS_SECTION)
        if not isinstance(settings, MetricsSettings):
            raise PluginError(
                f"settings section {SETTINGS_SECTION!r} is not the metrics plugin's "
                f"(got {type(settings).__name__}); install mailproxy-metrics under its entry "
                "point name 'metrics'"
            )
        metrics = _BY_KERNEL[mp] = AppMetrics(settings)
    return metrics
