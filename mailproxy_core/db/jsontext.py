"""JSON documents in TEXT columns (see ``schema.py`` for why TEXT).

Repositories encode on the way in and decode on the way out, so callers only ever see Python
values. Encoding is compact and keeps non-ASCII text as is. A repository may also hand a column
back still encoded, as :class:`JSONText`, for a caller that only passes it on (the API embeds it
in its answer as is).
"""

from __future__ import annotations

import json
from typing import Any


class JSONText(str):
    """JSON text that is passed on without being decoded.

    The API embeds a ``JSONText`` in its answer as the value it encodes (``{"payload": {...}}``,
    not a string), so a large document read from the database is neither decoded nor encoded
    again on the event loop. Only text the service encoded itself may be wrapped: it is not
    checked again.
    """

    __slots__ = ()


def encoded_json(text: str | None) -> JSONText | None:
    """The value of a JSON TEXT column left encoded; ``None`` for NULL or an empty string."""
    return None if text is None or text == "" else JSONText(text)


def encode_json(value: Any) -> str | None:
    """The JSON text of ``value``; ``None`` stays SQL NULL."""
    if value is None:
        return None
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def decode_json(text: str | None, default: Any = None) -> Any:
    """The value of a JSON TEXT column; ``default`` for NULL or an empty string."""
    if text is None or text == "":
        return default
    return json.loads(text)


def storable_text(text: str) -> str:
    """``text`` with every lone surrogate replaced (U+FFFD), so any column can store it.

    Peers' text can carry them: aiosmtplib, for one, keeps the bytes of a reply that is not
    UTF-8 as surrogate escapes. Those bytes are decoded again as UTF-8 with replacement (a
    Latin-1 ``ü`` becomes one U+FFFD); other lone surrogates become U+FFFD too.
    """
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
