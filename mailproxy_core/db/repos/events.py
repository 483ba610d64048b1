"""The ``message_events`` table, read side: a message's history for the API.

Events are written by the dispatcher and the receipt handlers in the same transaction as the
status change they record; the reporting loop drains the unreported ones. This repository only
reads them for ``messages/get`` and ``messages/list`` with ``include_history``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import sqlalchemy as sa

from ..engine import Database
from ..jsontext import decode_json
from ..schema import message_events
from .message_upsert import json_values


class EventsRepo:
    """Reads of ``message_events``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def history(self, message_pks: Collection[int]) -> dict[int, list[dict[str, Any]]]:
        """The events of each message in ``message_pks``, oldest first, in one query.

        Returns ``{message pk: [event, ...]}`` with an entry (possibly empty) for every pk asked
        for. Each event is ``{event_id, event_type, event_ts, description, metadata,
        reported_ts}``; ``event_id`` is the event's uuid (the id delivery reports carry) and
        ``metadata`` is decoded (``{}`` when absent).
        """
        history: dict[int, list[dict[str, Any]]] = {int(pk): [] for pk in message_pks}
        if not history:
            return history
        query = (
            sa.select(
                message_events.c.message_pk,
                message_events.c.event_uuid,
                message_events.c.event_type,
                message_events.c.event_ts,
                message_events.c.description,
                message_events.c.metadata,
                message_events.c.reported_ts,
            )
            .where(
                message_events.c.message_pk.in_(
                    json_values(self._db.dialect, list(history), sa.BigInteger)
                )
            )
            .order_by(message_events.c.message_pk, message_events.c.id)
        )
        for row in await self._db.fetch_all(query):
            history[int(row["message_pk"])].append(
                {
                    "event_id": row["event_uuid"],
                    "event_type": row["event_type"],
                    "event_ts": row["event_ts"],
                    "description": row["description"],
                    "metadata": decode_json(row["metadata"], {}),
                    "reported_ts": row["reported_ts"],
                }
            )
        return history
