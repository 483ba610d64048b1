"""The reference's delivery counters and which outcome increments which (docs/api.md).

Each of ``gmp_sent_total``, ``gmp_errors_total`` and ``gmp_deferred_total`` counts the events of
one type, so they add up to what the delivery reports say: ``sent + errors`` is the number of
messages finished, ``deferred`` the number of deferrals. ``gmp_rate_limited_total`` counts rate
limit hits and overlaps them: a ``deferred`` event whose reason is exactly ``rate_limit`` counts
as deferred *and* rate limited (as the reference counts it), an ``error`` that is exactly
``rate_limit_exceeded`` (an account with ``limit_behavior = "reject"``) as an error *and* rate
limited (the reference leaves it out of the errors; here every ``error`` event is an error).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from mailproxy_core import Message

RATE_LIMIT_REASON = "rate_limit"
"""The deferral reason of a rate-limit deferral (docs/reports.md), exactly."""

RATE_LIMIT_REJECTED = "rate_limit_exceeded"
"""The error text of a message refused by a ``reject`` rate limit, exactly."""


@dataclass(frozen=True, slots=True)
class CounterInfo:
    """One counter as exposed: its name (without ``_total``) and its help text."""

    name: str
    help: str


SENT = CounterInfo("gmp_sent", "Messages the transport accepted (sent events).")
ERRORS = CounterInfo(
    "gmp_errors", "Messages that ended in error (error events, rate-limit rejections included)."
)
DEFERRED = CounterInfo(
    "gmp_deferred", "Deferrals: transient failures and rate limits (deferred events)."
)
RATE_LIMITED = CounterInfo(
    "gmp_rate_limited",
    "Rate limit hits: deferrals with reason rate_limit and errors rate_limit_exceeded.",
)
COUNTERS: tuple[CounterInfo, ...] = (SENT, ERRORS, DEFERRED, RATE_LIMITED)


def counters_for_failure(error: str) -> tuple[CounterInfo, ...]:
    """The counters a ``message_failed`` with text ``error`` increments."""
    return (ERRORS, RATE_LIMITED) if error == RATE_LIMIT_REJECTED else (ERRORS,)


def counters_for_deferral(reason: str) -> tuple[CounterInfo, ...]:
    """The counters a ``message_deferred`` with ``reason`` increments."""
    return (DEFERRED, RATE_LIMITED) if reason == RATE_LIMIT_REASON else (DEFERRED,)


class OutcomeCounters:
    """Counts per counter and (tenant id, account id); names are attached when exposed."""

    def __init__(self) -> None:
        self._counts: dict[str, Counter[tuple[str, str]]] = {c.name: Counter() for c in COUNTERS}

    def add(self, counters: tuple[CounterInfo, ...], message: Message) -> None:
        """Count one outcome of ``message`` in each of ``counters``."""
        key = (message.tenant_id, message.account_id or "")
        for counter in counters:
            self._counts[counter.name][key] += 1

    def series(self, counter: CounterInfo) -> Iterator[tuple[str, str, int]]:
        """``(tenant_id, account_id, count)`` of every series of ``counter``, sorted."""
        for (tenant_id, account_id), count in sorted(self._counts[counter.name].items()):
            yield tenant_id, account_id, count

    def tenant_ids(self) -> set[str]:
        """Every tenant that has a series."""
        return {tenant_id for counts in self._counts.values() for tenant_id, _a in counts}
