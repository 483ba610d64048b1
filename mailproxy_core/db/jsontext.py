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
