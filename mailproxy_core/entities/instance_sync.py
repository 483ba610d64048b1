"""``instance/get_sync_status``: where delivery reporting stands with each tenant (docs/api.md).

A second endpoint class of the ``instance`` entity (the API merges the classes of one entity).
The state comes from ``tenant_sync_state``, which the reporting loop maintains; a tenant that was
never polled has no state yet and is due at once.

As in genro-mail-proxy 0.7.0, ``next_sync_due`` is a boolean ("a poll is due now") and the answer
carries ``sync_interval_seconds``; ``next_sync_ts`` (ours) says *when* the next poll is due.
"""

from __future__ import annotations

import math
import time
from typing import Any

from ..api.endpoint import Endpoint, any_principal


def next_sync_ts(state: dict[str, Any] | None, now: int, report_interval: float) -> int:
    """When the reporting loop next posts to a tenant (unix seconds).

    * never polled (no state, or no successful exchange yet and no back-off): ``now``;
    * failing (``failures > 0``): the back-off's ``next_attempt_ts``;
    * otherwise the next idle poll: ``last_sync_ts + report_interval``, or later while the
      client's do-not-disturb (``next_sync_after``) lasts.

    A time in the past means "overdue": the loop picks the tenant up on its next round. New
    events are pushed regardless of do-not-disturb; this is only the idle-poll schedule.
    """
    if state is None:
        return now
    if state.get("failures") and state.get("next_attempt_ts") is not None:
        return int(state["next_attempt_ts"])
    last_sync = state.get("last_sync_ts")
    due = now if last_sync is None else math.ceil(last_sync + report_interval)
    dnd_until = state.get("next_sync_after")
    if dnd_until is not None:
        due = max(due, int(dnd_until))
    return due


class InstanceSyncEndpoint(Endpoint):
    """Delivery-report synchronisation status of the instance's tenants."""

    @any_principal
    async def get_sync_status(self) -> dict[str, Any]:
        """Reporting status per tenant: last exchange, next poll, do-not-disturb.

        Answers ``{"ok": true, "tenants": [{id, name, active, client_base_url, last_sync_ts,
        next_sync_due, next_sync_ts, in_dnd, dnd_until, failures, retry_at, last_error}],
        "sync_interval_seconds"}``, tenants ordered by id. ``last_sync_ts`` is the last
        successful delivery-report exchange (``null``: never);
        ``next_sync_due`` is true when a poll is due now (never polled, interval elapsed, or the
        retry time after a failure has come); ``next_sync_ts`` is when the next idle poll (or
        retry) is due, in unix seconds; ``in_dnd`` whether the client asked not to be polled
        until later (``next_sync_after`` in its last answer), ``dnd_until`` until when (``null``
        outside do-not-disturb); ``failures`` counts the failed exchanges in a row, ``retry_at``
        is when the back-off retries (``null`` while nothing fails) and ``last_error`` what the
        last failed exchange answered (``null`` once one succeeds). ``sync_interval_seconds`` is the
        idle poll interval (MAILPROXY_REPORT_INTERVAL). The admin sees every tenant; a tenant
        key sees only its own tenant.
        """
        principal = self.require_principal()
        repos = self.mp.repos
        if principal.is_admin:
            tenants = await repos.tenants.list()
            states = await repos.sync_state.get_all()
        else:
            tenant_id = principal.tenant_id or ""
            own = await repos.tenants.get(tenant_id)
            tenants = [] if own is None else [own]
            state = await repos.sync_state.get(tenant_id)
            states = {} if state is None else {tenant_id: state}
        now = int(time.time())
        interval = self.mp.settings.report_interval
        return {
            "ok": True,
            "tenants": [
                _tenant_status(tenant, states.get(tenant["id"]), now, interval)
                for tenant in tenants
            ],
            "sync_interval_seconds": int(interval) if interval.is_integer() else interval,
        }


def _tenant_status(
    tenant: dict[str, Any], state: dict[str, Any] | None, now: int, interval: float
) -> dict[str, Any]:
    dnd_until = None if state is None else state.get("next_sync_after")
    due_at = next_sync_ts(state, now, interval)
    failures = 0 if state is None else int(state.get("failures") or 0)
    return {
        "id": tenant["id"],
        "name": tenant.get("name"),
        "active": bool(tenant.get("active", True)),
        "client_base_url": tenant.get("client_base_url"),
        "last_sync_ts": None if state is None else state.get("last_sync_ts"),
        "next_sync_due": due_at <= now,
        "next_sync_ts": due_at,
        "in_dnd": dnd_until is not None and dnd_until > now,
        "dnd_until": dnd_until if dnd_until is not None and dnd_until > now else None,
        "failures": failures,
        "retry_at": None
        if not failures or state is None or state.get("next_attempt_ts") is None
        else int(state["next_attempt_ts"]),
        "last_error": None if state is None else state.get("last_error"),
    }
