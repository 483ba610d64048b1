"""The ``command_log`` entity: read, export and purge the audit trail (docs/api.md).

Entries are written by the API itself (``api/command_recording.py``): every state-changing call,
with its payload (secrets masked), status and a short answer. All methods are admin-only
(docs/api.md): the log spans every tenant. Entries are returned with ``payload`` and
``response_body`` as stored (``JSONText``): the API embeds them in its answer without decoding a
payload that can be tens of megabytes.
"""

from __future__ import annotations

import builtins
from typing import Any

from ..api.endpoint import POST, Endpoint, admin_only
from ..api.errors import invalid_input
from ..errors import NotFound

MAX_LIST_LIMIT = 10_000
"""The largest ``limit`` of ``command_log/list``."""

MAX_EXPORT_LIMIT = 100_000
"""The largest (and default) ``limit`` of ``command_log/export``."""


class CommandLogEndpoint(Endpoint):
    """Command log: the audit trail of state-changing API calls."""

    @admin_only
    async def list(
        self,
        tenant_id: str | None = None,
        since_ts: int | None = None,
        until_ts: int | None = None,
        endpoint_filter: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """List recorded calls, oldest first.

        Each entry is ``{id, command_ts, endpoint, tenant_id, principal, payload,
        response_status, response_body}``: ``endpoint`` reads ``"POST /tenants/add"``,
        ``principal`` is ``"admin"`` or ``"tenant:<id>"``, ``payload`` is the request body with
        every secret replaced by ``"***"``, ``response_body`` the answer (summarised when long).

        Args:
            tenant_id: only calls concerning this tenant.
            since_ts: only calls recorded at or after this time (unix seconds).
            until_ts: only calls recorded at or before this time (unix seconds).
            endpoint_filter: only calls whose endpoint contains this text, e.g. ``tenants/``
                (case-insensitive).
            limit: at most this many entries (1 to 10000).
            offset: skip this many matching entries first (paging).
        """
        _check_paging(limit, offset, MAX_LIST_LIMIT)
        return await self.mp.repos.command_log.list(
            tenant_id=tenant_id,
            since_ts=since_ts,
            until_ts=until_ts,
            endpoint_filter=endpoint_filter,
            limit=limit,
            offset=offset,
            encoded=True,
        )

    @admin_only
    async def get(self, command_id: int) -> dict[str, Any]:
        """One recorded call, as in ``command_log/list``.

        Args:
            command_id: the entry's ``id``.
        """
        entry = await self.mp.repos.command_log.get(command_id, encoded=True)
        if entry is None:
            raise NotFound(f"command log entry {command_id} not found")
        return entry

    @admin_only
    async def export(
        self,
        tenant_id: str | None = None,
        since_ts: int | None = None,
        until_ts: int | None = None,
        endpoint_filter: str | None = None,
        limit: int = MAX_EXPORT_LIMIT,
        offset: int = 0,
    ) -> builtins.list[dict[str, Any]]:
        """Export recorded calls in replay order (oldest first), for audit or re-play.

        The entries are those of ``command_log/list``. Replaying them means sending each
        ``payload`` to its ``endpoint`` in this order; masked secrets (``"***"``) must be
        supplied again. Larger logs are exported page by page with ``limit`` and ``offset``:
        new calls are appended at the end, so pages already read do not shift.

        Args:
            tenant_id: only calls concerning this tenant.
            since_ts: only calls recorded at or after this time (unix seconds).
            until_ts: only calls recorded at or before this time (unix seconds).
            endpoint_filter: only calls whose endpoint contains this text (case-insensitive).
            limit: at most this many entries (1 to 100000, the default).
            offset: skip this many matching entries first.
        """
        _check_paging(limit, offset, MAX_EXPORT_LIMIT)
        return await self.mp.repos.command_log.list(
            tenant_id=tenant_id,
            since_ts=since_ts,
            until_ts=until_ts,
            endpoint_filter=endpoint_filter,
            limit=limit,
            offset=offset,
            encoded=True,
        )

    @admin_only
    @POST
    async def purge(self, threshold_ts: int) -> dict[str, Any]:
        """Delete the calls recorded before a time; answers ``{"ok": true, "removed": N}``.

        The purge itself is then recorded, so the trail shows who purged and when.

        Args:
            threshold_ts: delete entries with ``command_ts`` strictly before this time
                (unix seconds).
        """
        removed = await self.mp.repos.command_log.purge(threshold_ts)
        return {"ok": True, "removed": removed}


def _check_paging(limit: int, offset: int, max_limit: int) -> None:
    """422 naming ``limit``/``offset`` when out of range."""
    errors: list[dict[str, Any]] = []
    if not 1 <= limit <= max_limit:
        errors.append(
            {
                "field": "limit",
                "message": f"must be between 1 and {max_limit}",
                "type": "out_of_range",
            }
        )
    if offset < 0:
        errors.append(
            {"field": "offset", "message": "must be 0 or more", "type": "greater_than_equal"}
        )
    if errors:
        raise invalid_input(errors)
