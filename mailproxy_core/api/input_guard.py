"""Values no database column can hold, refused at the API edge with 422 instead of a 500.

JSON lets a client send integers of any size, ``NaN``/``Infinity`` (Python's parser accepts them),
strings with NUL characters (PostgreSQL text cannot store them) and unpaired UTF-16 surrogates
(not encodable as UTF-8). Every generated route checks its validated input, at any depth, before
the method runs.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import BaseModel

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def _problem(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            return f"must be an integer between {INT64_MIN} and {INT64_MAX}"
    elif isinstance(value, float):
        if not math.isfinite(value):
            return "must be a finite number (NaN and Infinity are not accepted)"
    elif isinstance(value, str):
        if "\x00" in value:
            return "must not contain NUL characters"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "must be valid Unicode text (it contains an unpaired surrogate)"
    return None


def _walk(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, BaseModel):
        value = value.model_dump()
    if isinstance(value, Mapping):
        for key, item in value.items():
            key_text = str(key)
            if _problem(key_text):
                yield path or "body", key_text
            yield from _walk(item, f"{path}.{key_text}" if path else key_text)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}.{index}" if path else str(index))
    else:
        yield path, value


def unstorable_values(values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """422 error entries (``field``, ``message``, ``type``) for every value no column can store."""
    errors: list[dict[str, Any]] = []
    for path, value in _walk(values, ""):
        problem = _problem(value)
        if problem is not None:
            errors.append({"field": path, "message": problem, "type": "value_not_storable"})
    return errors
