"""The dispatcher's side of ``messages``: claim with a lease, record outcomes, rate counters.

Claiming (docs/dispatch.md). One claim at a time across all processes (PostgreSQL: a transaction
advisory lock; SQLite: ``BEGIN IMMEDIATE``), so that the per-account in-flight limit holds across
workers: the claim counts the account's rows already ``sending`` under a live lease, skips
saturated accounts, and takes at most the free slots of each account. Rows are then switched to
``sending`` with ``lease_owner``/``lease_until`` in one ``UPDATE ... WHERE pk IN (...)
RETURNING``; PostgreSQL additionally selects the candidates ``FOR UPDATE SKIP LOCKED``.

Outcomes are written in groups: one transaction updates the message rows and inserts their
events (the outbox), so a status change and its event are never apart.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from ..engine import Database
from ..jsontext import decode_json, encode_json, storable_text
from ..schema import (
    LEASED_CONDITION,
    READY_CONDITION,
    messages,
    rate_counters,
    tenants,
)
from . import queue_sql

CLAIM_LOCK_KEY = 0x6D61696C  # "mail": the advisory lock serialising claims on PostgreSQL


@dataclass(frozen=True, slots=True)
class Holds:
    """Messages the dispatcher must not claim: inactive tenants and suspended batches."""

    inactive_tenants: frozenset[str] = frozenset()
    all_suspended: frozenset[str] = frozenset()
    suspended_batches: Mapping[str, frozenset[str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one attempt, to be written with its event."""

    pk: int
    tenant_id: str
    status: str
    event_type: str
    description: str | None
    now: int
    next_attempt_ts: int | None = None
    attempted: bool = True
    last_error: str | None = None
    metadata: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class WrittenEvent:
    """An event as written, for hooks and the reporting loop's wake-up."""

    event_uuid: str
    pk: int
    tenant_id: str
    event_type: str


class QueueRepo:
    """Claims, leases and outcomes on ``messages``; counters on ``rate_counters``."""

    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._clock = clock

    async def holds(self) -> Holds:
        """Which tenants and batches are held (inactive or suspended)."""
        rows = await self._db.fetch_all(
            sa.select(tenants.c.id, tenants.c.active, tenants.c.suspended_batches).where(
                sa.or_(tenants.c.active == sa.false(), tenants.c.suspended_batches != "[]")
            )
        )
        inactive: set[str] = set()
        everything: set[str] = set()
        batches: dict[str, frozenset[str]] = {}
        for row in rows:
            if not row["active"]:
                inactive.add(row["id"])
                continue
            suspended = decode_json(row["suspended_batches"]) or []
            if "*" in suspended:
                everything.add(row["id"])
            elif suspended:
                batches[row["id"]] = frozenset(str(b) for b in suspended)
        return Holds(frozenset(inactive), frozenset(everything), batches)

    async def reclaim_expired(self, now: int) -> int:
        """Make messages whose lease expired (a crashed worker) claimable again."""
        rows = await self._db.fetch_all(
            sa.update(messages)
            .where(LEASED_CONDITION, messages.c.lease_until < now)
            .values(
                status=sa.case((messages.c.attempts > 0, "deferred"), else_="pending"),
                lease_owner=None,
                lease_until=None,
                updated_at=now,
            )
            .returning(messages.c.pk)
        )
        return len(rows)

    async def claim(
        self,
        *,
        owner: str,
        limit: int,
        per_account: int,
        lease_seconds: float,
        holds: Holds,
    ) -> list[dict[str, Any]]:
        """Claim up to ``limit`` ready messages, at most ``per_account`` in flight per account.

        Returns the claimed rows (payload decoded) in priority then FIFO order.
        """
        _written, rows = await self.exchange(
            owner,
            (),
            limit=limit,
            per_account=per_account,
            lease_seconds=lease_seconds,
            holds=holds,
        )
        return rows

    async def exchange(
        self,
        owner: str,
        outcomes: Sequence[Outcome] | Callable[[], Sequence[Outcome]],
        *,
        limit: int,
        per_account: int,
        lease_seconds: float,
        holds: Holds,
    ) -> tuple[list[WrittenEvent], list[dict[str, Any]]]:
        """Write ``outcomes`` (see ``record``), then claim up to ``limit`` messages (see
        ``claim``), in one transaction: the dispatcher's whole round trip to the database.

        ``outcomes`` may be a function, called once the transaction has begun (on SQLite: once
        the write turn is granted), so that sends finishing while the transaction waited are
        written too. Written first, so the claim already counts the finished sends as out of
        flight. When outcomes are written, a claim that would wait for another process's claim
        (the PostgreSQL advisory lock is taken) is skipped: the outcomes commit without waiting.
        """
        if not callable(outcomes) and not outcomes and limit <= 0:
            return [], []
        async with self._db.transaction():
            group = outcomes() if callable(outcomes) else outcomes
            written = await self._write(owner, group) if group else []
            claimed = await self._claim(
                owner, limit, per_account, lease_seconds, holds, wait=not group
            )
        rows = [{**row, "payload": decode_json(row["payload"]) or {}} for row in claimed]
        rows.sort(key=lambda r: (r["priority"], r["pk"]))
        return written, rows

    async def _claim(
        self,
        owner: str,
        limit: int,
        per_account: int,
        lease_seconds: float,
        holds: Holds,
        *,
        wait: bool = True,
    ) -> list[dict[str, Any]]:
        """The claim's statements, inside the caller's transaction (``wait``: see ``exchange``)."""
        if limit <= 0:
            return []
        dialect = self._db.dialect
        if dialect == "postgresql":
            if wait:
                await self._db.execute(sa.select(sa.func.pg_advisory_xact_lock(CLAIM_LOCK_KEY)))
            elif not await self._db.fetch_val(
                sa.select(sa.func.pg_try_advisory_xact_lock(CLAIM_LOCK_KEY))
            ):
                return []
        now = int(self._clock())
        in_flight = {
            row["account_pk"]: int(row["n"])
            for row in await self._db.fetch_all(queue_sql.in_flight_sql(dialect), {"now": now})
        }
        saturated = sorted(k for k, n in in_flight.items() if k is not None and n >= per_account)
        blocked = sorted(holds.inactive_tenants | holds.all_suspended)
        batches = [
            [tenant, batch]
            for tenant, codes in sorted(holds.suspended_batches.items())
            for batch in sorted(codes)
        ]
        values: dict[str, Any] = {"now": now, "limit": limit * 4}
        for name, items in (("saturated", saturated), ("blocked", blocked), ("batches", batches)):
            if items:
                values[name] = queue_sql.json_list(items)
        query = queue_sql.candidates_sql(dialect, bool(saturated), bool(blocked), bool(batches))
        chosen: list[int] = []
        taken: dict[Any, int] = {}
        for row in await self._db.fetch_all(query, values):
            account = row["account_pk"]
            if in_flight.get(account, 0) + taken.get(account, 0) >= per_account:
                continue
            taken[account] = taken.get(account, 0) + 1
            chosen.append(row["pk"])
            if len(chosen) >= limit:
                break
        if not chosen:
            return []
        return await self._db.fetch_all(
            queue_sql.lease_sql(dialect),
            {
                "owner": owner,
                "until": now + int(lease_seconds),
                "now": now,
                "pks": queue_sql.json_list(chosen),
            },
        )

    async def release(
        self, owner: str, pks: Iterable[int] | None = None, *, keep: Iterable[int] = ()
    ) -> int:
        """Give back claimed messages that were never attempted (shutdown, or claims whose
        answer was lost).

        ``pks`` ``None`` releases every message still leased by ``owner``, except those in
        ``keep``. Released messages are ``pending`` again (``deferred`` when attempted before),
        with no lease.
        """
        condition = [messages.c.lease_owner == owner, LEASED_CONDITION]
        if pks is not None:
            keys = list(pks)
            if not keys:
                return 0
            condition.append(messages.c.pk.in_(keys))
        kept = sorted(keep)
        if kept:
            condition.append(messages.c.pk.not_in(kept))
        now = int(self._clock())
        rows = await self._db.fetch_all(
            sa.update(messages)
            .where(*condition)
            .values(
                status=sa.case((messages.c.attempts > 0, "deferred"), else_="pending"),
                lease_owner=None,
                lease_until=None,
                updated_at=now,
            )
            .returning(messages.c.pk)
        )
        return len(rows)

    async def record(self, owner: str, outcomes: Sequence[Outcome]) -> list[WrittenEvent]:
        """Write outcomes and their events in one transaction.

        An outcome whose message is no longer leased by ``owner`` (the lease expired and another
        worker took it, or the message was deleted) is skipped, with its event.
        """
        if not outcomes:
            return []
        async with self._db.transaction():
            return await self._write(owner, outcomes)

    async def _write(self, owner: str, outcomes: Sequence[Outcome]) -> list[WrittenEvent]:
        """The outcome statements, inside the caller's transaction."""
        written: list[WrittenEvent] = []
        sent = [o for o in outcomes if o.status == "sent"]
        kept: set[int] = set()
        if sent:
            # The common case in one statement: every sent row of the group at once.
            by_ts: dict[int, list[int]] = {}
            for o in sent:
                by_ts.setdefault(o.now, []).append(o.pk)
            for ts, pks in by_ts.items():
                rows = await self._db.fetch_all(
                    queue_sql.mark_sent_sql(self._db.dialect),
                    {"ts": ts, "owner": owner, "pks": queue_sql.json_list(pks)},
                )
                kept.update(row["pk"] for row in rows)
        for o in outcomes:
            if o.status == "sent":
                continue
            values: dict[str, Any] = {
                "status": o.status,
                "lease_owner": None,
                "lease_until": None,
                "last_error": None if o.last_error is None else storable_text(o.last_error),
                "updated_at": o.now,
            }
            if o.attempted:
                values["attempts"] = messages.c.attempts + 1
            if o.next_attempt_ts is not None:
                values["next_attempt_ts"] = o.next_attempt_ts
            rows = await self._db.fetch_all(
                sa.update(messages)
                .where(messages.c.pk == o.pk, messages.c.lease_owner == owner)
                .values(**values)
                .returning(messages.c.pk)
            )
            kept.update(row["pk"] for row in rows)
        events = []
        for o in outcomes:
            if o.pk not in kept:
                continue
            event_uuid = str(uuid.uuid4())
            # Texts from transports (SMTP replies) may hold bytes that are not UTF-8.
            metadata = storable_text(encode_json(o.metadata) or "") if o.metadata else None
            description = None if o.description is None else storable_text(o.description)
            events.append(
                [event_uuid, o.pk, o.tenant_id, o.event_type, o.now, description, metadata]
            )
            written.append(WrittenEvent(event_uuid, o.pk, o.tenant_id, o.event_type))
        if events:
            await self._db.execute(
                queue_sql.insert_events_sql(self._db.dialect), {"rows": queue_sql.json_list(events)}
            )
        return written

    async def reserve_rate(
        self, slots: Sequence[tuple[str, int, int]], now: int
    ) -> list[tuple[str, int]]:
        """Take one unit of every ``(scope, window seconds, limit)`` counter, or none at all.

        Returns the exhausted ``(scope, window)`` pairs; empty means the units were taken. All
        counters change in one transaction, so concurrent workers never overshoot a limit.
        """
        if not slots:
            return []

        class _Exhausted(Exception):
            pass

        exhausted: list[tuple[str, int]] = []
        try:
            async with self._db.transaction():
                for scope, window, limit in slots:
                    start = now - now % window
                    upsert = self._db.insert(rate_counters).values(
                        scope=scope, window=window, window_start=start, count=1
                    )
                    claim = upsert.on_conflict_do_update(
                        index_elements=[
                            rate_counters.c.scope,
                            rate_counters.c.window,
                            rate_counters.c.window_start,
                        ],
                        set_={"count": rate_counters.c.count + 1},
                        where=rate_counters.c.count < limit,
                    ).returning(rate_counters.c.count)
                    if await self._db.fetch_one(claim) is None:
                        exhausted.append((scope, window))
                if exhausted:
                    raise _Exhausted
        except _Exhausted:
            return exhausted
        return []

    async def rate_counts(
        self, scopes: Sequence[str], windows: Mapping[str, int], now: int
    ) -> dict[tuple[str, int], int]:
        """The attempts counted so far in the current window of each scope and window length:
        ``{(scope, window seconds): count}``; a window nobody used yet is absent."""
        if not scopes or not windows:
            return {}
        current = sa.or_(
            *(
                sa.and_(
                    rate_counters.c.window == seconds,
                    rate_counters.c.window_start == now - now % seconds,
                )
                for seconds in windows.values()
            )
        )
        rows = await self._db.fetch_all(
            sa.select(rate_counters.c.scope, rate_counters.c.window, rate_counters.c.count).where(
                rate_counters.c.scope.in_(list(scopes)), current
            )
        )
        return {(row["scope"], int(row["window"])): int(row["count"]) for row in rows}

    async def purge_rate_counters(self, before: int) -> None:
        """Forget counters of windows that started before ``before``."""
        await self._db.execute(
            sa.delete(rate_counters).where(rate_counters.c.window_start < before)
        )

    async def stats(self, now: int) -> dict[str, Any]:
        """``{"by_status": {status: n}, "oldest_ready_age": seconds}`` (metrics)."""
        rows = await self._db.fetch_all(
            sa.select(messages.c.status, sa.func.count().label("n")).group_by(messages.c.status)
        )
        oldest = await self._db.fetch_val(
            sa.select(sa.func.min(messages.c.created_at)).where(
                READY_CONDITION, messages.c.next_attempt_ts <= now
            )
        )
        return {
            "by_status": {row["status"]: int(row["n"]) for row in rows},
            "oldest_ready_age": max(0, now - int(oldest)) if oldest is not None else 0,
        }
