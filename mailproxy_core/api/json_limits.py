"""Nesting depth of a JSON text, measured without parsing it.

Python's JSON parser, pydantic and every walk over a decoded body recurse once per level, so a
body nested 100,000 levels deep would fail deep inside one of them. :func:`too_deep` answers
whether a text nests deeper than a limit before anything recursive touches it, in time linear
in the text, with every step in C.
"""

from __future__ import annotations

import itertools
import json

MAX_JSON_DEPTH = 32
"""Deepest nesting accepted in a request body or a JSON-encoded query parameter.

The deepest body the API documents is a batch with an attachment's ``auth`` object (5 levels);
plugin configuration objects add a few more. 32 leaves ample room and keeps every recursion far
below Python's limit.
"""

_STRUCTURE = b'[]{}"'
_NOT_STRUCTURE = bytes(set(range(256)) - set(_STRUCTURE))
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")


def _utf8(raw: bytes | str) -> bytes:
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogatepass")
    encoding = json.detect_encoding(raw)
    if encoding == "utf-8" or encoding == "utf-8-sig":
        return raw
    return raw.decode(encoding, "replace").encode("utf-8")


def too_deep(raw: bytes | str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text ``raw`` nests arrays/objects deeper than ``limit`` levels.

    Every step runs in C: escaped backslashes and quotes are dropped, then every byte but
    brackets and quotes (UTF-8 never uses those bytes inside a multi-byte character), then the
    string literals (every other piece between quotes), and the running depth over the
    remaining brackets is summed. Up to the first stray bracket that sum is the depth the parser
    reaches, and the parser stops there, so its maximum is a safe bound for malformed text too.
    """
    text = _utf8(raw).replace(b"\\\\", b"").replace(b'\\"', b"")
    brackets = b"".join(text.translate(None, _NOT_STRUCTURE).split(b'"')[::2])
    if len(brackets) <= limit:
        return False
    # Removing the adjacent pairs "[]" (then "{}") lowers the maximum by at most one each
    # (two per pass) and shrinks a bracket-heavy text before the per-bracket sum.
    reduced, window = brackets, 0
    while window < 8 and len(reduced) > limit:
        shorter = reduced.replace(b"[]", b"").replace(b"{}", b"")
        if len(shorter) == len(reduced):
            break
        reduced, window = shorter, window + 2
    deepest = _deepest(reduced)
    if deepest > limit:
        return True
    if deepest + window <= limit:
        return False
    return _deepest(brackets) > limit


def structure_steps(text: bytes, in_string: bool = False) -> tuple[memoryview, int]:
    """The brackets of the UTF-8 JSON ``text`` outside string literals, as +1 (opening) and -1
    (closing) signed bytes, and the number of unescaped quotes in ``text``.

    ``text`` is a piece of a larger text that starts inside a string literal when ``in_string``
    is true; it must not end between a backslash and the character it escapes.
    """
    unescaped = text.replace(b"\\\\", b"").replace(b'\\"', b"")
    pieces = unescaped.translate(None, _NOT_STRUCTURE).split(b'"')
    brackets = b"".join(pieces[1::2] if in_string else pieces[::2])
    return memoryview(brackets.translate(_STEPS)).cast("b"), len(pieces) - 1


def _deepest(brackets: bytes) -> int:
    """The largest running sum of +1 per opening and -1 per closing bracket (0 if none)."""
    if not brackets:
        return 0
    # 0xff is -1 read as a signed byte
    return max(itertools.accumulate(memoryview(brackets.translate(_STEPS)).cast("b")))


def too_deep_message(limit: int = MAX_JSON_DEPTH) -> str:
    """The text of the refusal, for ``detail``."""
    return (
        f"JSON nested deeper than {limit} levels; no parameter of this API needs more than a "
        "few levels"
    )
