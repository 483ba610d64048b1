"""The ``gmp_send_duration_seconds`` histogram, by tenant, account and outcome.

Kept by hand rather than with ``prometheus_client.Histogram`` so that one collector exposes every
metric of an app from plain counts, without ``_created`` series.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from prometheus_client.utils import floatToGoString

OUTCOMES = ("sent", "error", "deferred")
"""Values of the ``outcome`` label: the status the attempt left the message in."""


@dataclass(slots=True)
class _Series:
    counts: list[int]
    total: float = 0.0
    observations: int = 0


class DurationHistogram:
    """Observations in fixed buckets, one series per (tenant id, account id, outcome)."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(float(bound) for bound in bounds)
        self._series: dict[tuple[str, str, str], _Series] = {}

    def observe(self, tenant_id: str, account_id: str, outcome: str, seconds: float) -> None:
        """Add one attempt of ``seconds``; ``outcome`` is one of ``OUTCOMES``."""
        key = (tenant_id, account_id, outcome)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series(counts=[0] * (len(self.bounds) + 1))
        # bisect_left: a value equal to a bound belongs to that bound's bucket (le = "<=").
        series.counts[bisect_left(self.bounds, seconds)] += 1
        series.total += seconds
        series.observations += 1

    def series(self) -> Iterator[tuple[tuple[str, str, str], list[tuple[str, float]], float]]:
        """``(labels, cumulative buckets as (le, count) with +Inf last, sum)``, sorted."""
        for key, series in sorted(self._series.items()):
            buckets: list[tuple[str, float]] = []
            running = 0
            for bound, count in zip(self.bounds, series.counts, strict=False):
                running += count
                buckets.append((floatToGoString(bound), running))
            buckets.append(("+Inf", series.observations))
            yield key, buckets, series.total

    def tenant_ids(self) -> set[str]:
        """Every tenant that has a series."""
        return {tenant_id for tenant_id, _a, _o in self._series}
