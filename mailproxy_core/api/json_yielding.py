"""Check and parse a large JSON body without holding the event loop.

``json.loads`` of a 27 MB body is one C call of about half a second, and the GIL is held for all
of it, so neither a thread nor anything else can run meanwhile: every other request waits. Bodies
up to ``YIELDING_THRESHOLD_BYTES`` are still parsed that way (it costs less than a yield); larger
ones go through :func:`too_deep_yielding` and :func:`loads_yielding`, which do the same work in
pieces and hand the loop back between pieces once ``SLICE_SECONDS`` have passed.

* The nesting check is :func:`~mailproxy_core.api.json_limits.too_deep` run over consecutive
  chunks of the text, carrying the string state and the running depth from chunk to chunk.
* The parsing is ijson's push parser (the C backend, yajl), fed ``FEED_BYTES`` at a time: a
  few milliseconds of C work per piece, and about twice the time of ``json.loads`` in all on
  bodies of many small values (less on bodies of a few large strings).

A faster one-call parser (orjson) would not do: it parses in one call too, holding the GIL, so a
body of the maximum size would still hold the loop for well over 100 ms on a loaded machine;
parsing in pieces bounds the stall whatever the body size.
Parsing in a thread does not help (the GIL is held for the whole call); in a process pool, the
result would have to be unpickled in one piece on the loop.
"""

from __future__ import annotations

import codecs
import itertools
import json
import re
from typing import Any

import ijson

from ..pacing import Pacer
from .json_limits import MAX_JSON_DEPTH, structure_steps

YIELDING_THRESHOLD_BYTES = 1 << 20
"""Bodies larger than this (1 MiB) are checked and parsed in pieces; smaller ones in one call."""

PARSED_BODY = "mailproxy_parsed_body"
"""Name of the ``g`` attribute where the generated routes keep the JSON object they parsed from
the request body, so that the command log does not parse it a second time."""

SLICE_SECONDS = 0.01
"""Longest stretch of work between two yields to the event loop."""


def _pacer() -> Pacer:
    return Pacer(SLICE_SECONDS)


CHUNK_BYTES = 256 * 1024
"""Size of the pieces the nesting check works on."""

FEED_BYTES = 32 * 1024
"""Size of the pieces given to the parser between two checks of the time."""


def _utf8(raw: bytes | str) -> bytes:
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogatepass")
    encoding = json.detect_encoding(raw)
    if encoding in ("utf-8", "utf-8-sig"):
        return raw
    return raw.decode(encoding, "replace").encode("utf-8")


async def too_deep_yielding(raw: bytes | str, limit: int = MAX_JSON_DEPTH) -> bool:
    """:func:`~mailproxy_core.api.json_limits.too_deep` of ``raw``, yielding between chunks.

    Chunks end where the preceding byte is not a backslash, so no escape sequence (and no run
    of backslashes) is cut in two; whether the chunk starts inside a string literal follows
    from the number of unescaped quotes before it.
    """
    pacer = _pacer()
    text = _utf8(raw)
    in_string = False
    depth = 0
    start = 0
    while start < len(text):
        end = min(len(text), start + CHUNK_BYTES)
        while end < len(text) and text[end - 1] == 0x5C:  # never cut after a backslash
            end += 1
        steps, quotes = structure_steps(text[start:end], in_string)
        in_string ^= quotes % 2 == 1
        if steps:
            if depth + max(itertools.accumulate(steps)) > limit:
                return True
            depth += sum(steps)
        start = end
        await pacer.pause()
    return False


async def loads_yielding(raw: bytes | str) -> Any:
    """``json.loads(raw)``, decoded in pieces with yields to the event loop between them.

    The pieces go to ijson's push parser (its C backend, yajl), which builds the value as the
    text arrives. What it accepts is strict JSON: ``NaN`` and ``Infinity`` are refused (Python's
    ``json`` accepts them), a repeated key keeps its last value, as with ``json.loads``. An
    unpaired UTF-16 surrogate escape (``"\\ud800"``) is refused too: the parser would turn it
    into ``?`` silently, and the service refuses such text anyway.

    Raises:
        ValueError: malformed text; the message is the parser's reason (no position: the
            text may be megabytes long).
        UnicodeDecodeError: bytes that are not text in the detected encoding.
    """
    data = _utf8(raw)
    if data.startswith(codecs.BOM_UTF8):
        raise ValueError("Unexpected UTF-8 BOM (decode using utf-8-sig)")
    found = ijson.sendable_list()
    parser = ijson.items_coro(found, "", use_float=True)
    pacer = _pacer()
    try:
        for start in range(0, len(data), FEED_BYTES):
            _refuse_lone_surrogates(data, start, start + FEED_BYTES)
            parser.send(data[start : start + FEED_BYTES])
            await pacer.pause()
        parser.close()
    except ijson.JSONError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "malformed JSON"
        raise ValueError(reason) from None
    if len(found) != 1:  # the parser refuses trailing values itself; this is a safeguard
        raise ValueError("expected exactly one JSON value")
    return found[0]


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_ESCAPE_LENGTH = 6


def _refuse_lone_surrogates(data: bytes, start: int, end: int) -> None:
    """Raise ``ValueError`` for an unpaired surrogate escape that starts in ``data[start:end]``."""
    window_end = min(len(data), end + _ESCAPE_LENGTH)
    for match in _SURROGATE_ESCAPE.finditer(data, start, window_end):
        at = match.start()
        if at >= end or not _is_escape(data, at):
            continue
        high = match.group()[3:4].lower() in b"89ab"
        if high:
            after = _SURROGATE_ESCAPE.match(data, at + _ESCAPE_LENGTH)
            if after is not None and after.group()[3:4].lower() in b"cdef":
                continue
        else:
            before = at - _ESCAPE_LENGTH
            earlier = _SURROGATE_ESCAPE.match(data, before) if before >= 0 else None
            if (
                earlier is not None
                and earlier.group()[3:4].lower() in b"89ab"
                and _is_escape(data, before)
            ):
                continue
        raise ValueError("text must not contain unpaired surrogates (\\ud800-\\udfff)")


def _is_escape(data: bytes, at: int) -> bool:
    """Whether the backslash at ``at`` starts an escape (it is not itself escaped)."""
    backslashes = 0
    while at - backslashes - 1 >= 0 and data[at - backslashes - 1] == 0x5C:
        backslashes += 1
    return backslashes % 2 == 0
