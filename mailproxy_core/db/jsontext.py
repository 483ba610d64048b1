"""JSON documents in TEXT columns (see ``schema.py`` for why TEXT).

Repositories encode on the way in and decode on the way out, so callers only ever see Python
values. Encoding is compact and keeps non-ASCII text as is.
"""

from __future__ import annotations

import json
from typing import Any


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
