"""The message search form: reading it, and narrowing text matches to the right field."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mailproxy_core import InvalidInput

STATUSES = ("pending", "deferred", "sending", "sent", "error")


@dataclass(frozen=True, slots=True)
class SearchForm:
    """The filters of the Messages page, as typed (empty string = no filter)."""

    tenant_id: str = ""
    status: str = ""
    recipient: str = ""
    subject: str = ""
    client_id: str = ""
    batch_code: str = ""
    date_from: str = ""
    date_to: str = ""
    before: str = ""

    @classmethod
    def read(cls, args: Mapping[str, str]) -> SearchForm:
        return cls(**{name: args.get(name, "").strip() for name in cls.__slots__})

    def query(self, **changes: str) -> dict[str, str]:
        """The non-empty filters as query parameters, with ``changes`` applied."""
        values = {name: getattr(self, name) for name in self.__slots__}
        values.update(changes)
        return {name: value for name, value in values.items() if value}

    def kernel_filters(self) -> dict[str, Any]:
        """Keyword arguments of ``MailProxy.search_messages`` (``tenant_id`` not included).

        Raises:
            InvalidInput: an unknown status, a date that is not YYYY-MM-DD, a bad cursor.
        """
        if self.status and self.status not in STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(STATUSES)}")
        text = self.recipient or self.subject
        return {
            "status": self.status or None,
            "text": text or None,
            "client_id": self.client_id or None,
            "batch_code": self.batch_code or None,
            "created_from": _day_start(self.date_from, "date_from"),
            "created_to": _day_end(self.date_to, "date_to"),
            "before_pk": _cursor(self.before),
        }

    def keeps(self, message: Mapping[str, Any]) -> bool:
        """Whether a message matched by text really has it in the recipient / subject field."""
        payload = message.get("payload") or {}
        if self.recipient:
            wanted = self.recipient.lower()
            addresses = " ".join(
                " ".join(value) if isinstance(value, list) else str(value or "")
                for value in (payload.get("to"), payload.get("cc"), payload.get("bcc"))
            )
            if wanted not in addresses.lower():
                return False
        if self.subject:
            if self.subject.lower() not in str(payload.get("subject") or "").lower():
                return False
        return True


def _date(text: str, field: str) -> datetime.date | None:
    if not text:
        return None
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{field}: expected a date like 2026-12-31, got {text!r}") from None


def _day_start(text: str, field: str) -> int | None:
    day = _date(text, field)
    if day is None:
        return None
    return int(datetime.datetime.combine(day, datetime.time(), datetime.UTC).timestamp())


def _day_end(text: str, field: str) -> int | None:
    start = _day_start(text, field)
    return None if start is None else start + 86399


def _cursor(text: str) -> int | None:
    if not text:
        return None
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        raise InvalidInput("before: not a page cursor; start the search again")
    return int(text)
