"""Rate limits per account and per tenant, per minute / hour / day (docs/dispatch.md).

Windows are fixed and aligned to UTC (a minute window starts at :00). Counters live in the
database so every worker sees the same numbers; a unit is taken for each *attempt* just before
it is made, because providers count attempts too. When a limit is reached, ``defer`` moves the
message to the start of the next window (a ``deferred`` event with description ``rate_limit``,
not counted as a retry) and ``reject`` ends it with ``error`` ``rate_limit_exceeded``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..models import Account, Tenant

WINDOWS: Mapping[str, int] = {"minute": 60, "hour": 3600, "day": 86400}

RATE_LIMIT_REASON = "rate_limit"
RATE_LIMIT_REJECTED = "rate_limit_exceeded"


def limit_slots(account: Account, tenant: Tenant | None) -> list[tuple[str, int, int]]:
    """The ``(scope, window seconds, limit)`` counters one attempt must take a unit of."""
    slots: list[tuple[str, int, int]] = []
    for name, seconds in WINDOWS.items():
        limit = getattr(account, f"limit_per_{name}")
        if limit:
            slots.append((f"account:{account.pk}", seconds, int(limit)))
    limits: Mapping[str, Any] = (tenant.rate_limits if tenant else None) or {}
    for name, seconds in WINDOWS.items():
        limit = limits.get(f"per_{name}")
        if limit:
            slots.append((f"tenant:{account.tenant_id}", seconds, int(limit)))
    return slots


def next_window_start(exhausted: Sequence[tuple[str, int]], now: int) -> int:
    """When every exhausted window has rolled over: the latest of their ends."""
    return max(now - now % window + window for _scope, window in exhausted)
