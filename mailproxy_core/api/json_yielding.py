"""Check and parse a large JSON body without holding the event loop.

``json.loads`` of a 27 MB body is one C call of about half a second, and the GIL is held for all
of it, so neither a thread nor anything else can run meanwhile: every other request waits. Bodies
up to ``YIELDING_THRESHOLD_BYTES`` are still parsed that way (it costs less than a yield); larger
ones go through :func:`too_deep_yielding` and :func:`loads_yielding`, which do the same work in
pieces and hand the loop back between pieces once ``SLICE_SECONDS`` have passed.

* The nesting check is :func:`~mailproxy_core.api.json_limits.too_deep` run over consecutive
  chunks of the text, carrying the string state and the running depth from chunk to chunk.
* The parser handles containers itself only when they are large: a container is first decoded
  by the standard library's C scanner from a window of ``WINDOW_CHARS`` characters, which
  succeeds whenever the whole container fits in the window; only a container that does not fit
  is walked here. Its members are decoded one per C call when they are large, and in runs of
  many members per C call (``RUN_CHARS`` of text, see :func:`_batch`) when they are small, so
  a body of millions of small values costs a few thousand Python-level steps, and no single C
  call works on more than ``RUN_CHARS`` characters. Measured on bodies of 18-28 MB: one to three
  times the time of ``json.loads``. The result is the same value ``json.loads`` returns (same
  decoder: ``NaN``/``Infinity`` accepted, a repeated key keeps its first place and its last
  value), and malformed text raises ``json.JSONDecodeError``.

A faster parser (orjson) was not taken: it parses in one call too, holding the GIL, so a body of
the maximum size would still hold the loop for well over 100 ms on a loaded machine, and it
would add a compiled dependency; parsing in pieces bounds the stall whatever the body size.
Parsing in a thread does not help (the GIL is held for the whole call); in a process pool, the
result would have to be unpickled in one piece on the loop.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from typing import Any

from .json_limits import MAX_JSON_DEPTH, structure_steps

YIELDING_THRESHOLD_BYTES = 1 << 20
"""Bodies larger than this (1 MiB) are checked and parsed in pieces; smaller ones in one call."""

PARSED_BODY = "mailproxy_parsed_body"
"""Name of the ``g`` attribute where the generated routes keep the JSON object they parsed from
the request body, so that the command log does not parse it a second time."""

SLICE_SECONDS = 0.01
"""Longest stretch of work between two yields to the event loop."""

CHUNK_BYTES = 256 * 1024
"""Size of the pieces the nesting check works on."""

WINDOW_CHARS = 4096
"""A container fitting in this many characters is decoded in one C call; a larger one is walked
(the failed attempt costs at most this much)."""

RUN_CHARS = 32 * 1024
"""Longest run of members of a walked container decoded in one C call (:func:`_batch`)."""

_DECODER = json.JSONDecoder()
_SCAN: Any = getattr(_DECODER, "scan_once")  # noqa: B009 (not in the type stubs)
_WHITESPACE = re.compile(r"[ \t\n\r]*")


class Pacer:
    """Yields to the event loop once ``SLICE_SECONDS`` of work has passed since the last time."""

    def __init__(self) -> None:
        self._since = time.perf_counter()

    async def pause(self) -> None:
        now = time.perf_counter()
        if now - self._since >= SLICE_SECONDS:
            await asyncio.sleep(0)
            self._since = time.perf_counter()


def _text(raw: bytes | str) -> str:
    """The body as text, decoded as ``json.loads`` decodes bytes."""
    if isinstance(raw, str):
        return raw
    encoding = json.detect_encoding(raw)
    return raw.decode(encoding, "surrogatepass")


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
    pacer = Pacer()
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

    Raises:
        json.JSONDecodeError: malformed text (as ``json.loads`` would).
        UnicodeDecodeError: bytes that are not text in the detected encoding.
    """
    text = _text(raw)
    if text.startswith("\ufeff"):
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
    pacer = Pacer()
    index = _skip(text, 0)
    value, index = await _value(text, index, pacer)
    index = _skip(text, index)
    if index != len(text):
        raise json.JSONDecodeError("Extra data", text, index)
    return value


def _skip(text: str, index: int) -> int:
    match = _WHITESPACE.match(text, index)
    return index if match is None else match.end()


def _scalar(text: str, index: int) -> tuple[Any, int]:
    try:
        return _SCAN(text, index)
    except StopIteration as stop:
        raise json.JSONDecodeError("Expecting value", text, stop.value) from None


async def _value(text: str, index: int, pacer: Pacer) -> tuple[Any, int]:
    """The value starting at ``index`` (no whitespace before it) and the index after it."""
    opening = text[index : index + 1]
    if opening not in ("{", "["):
        return _scalar(text, index)
    window = text[index : index + WINDOW_CHARS]
    if len(window) < len(text) - index:
        try:
            value, end = _SCAN(window, 0)
        except (StopIteration, json.JSONDecodeError):
            pass  # larger than the window (or malformed): walked below
        else:
            return value, index + end
    else:
        return _scalar(text, index)
    await pacer.pause()
    if opening == "[":
        return await _array(text, index + 1, pacer)
    return await _object(text, index + 1, pacer)


async def _array(text: str, index: int, pacer: Pacer) -> tuple[list[Any], int]:
    """The array whose ``[`` is just before ``index``, and the index after its ``]``."""
    items: list[Any] = []
    index = _skip(text, index)
    if text[index : index + 1] == "]":
        return items, index + 1
    runs = _Runs()
    while True:
        batch = runs.attempt(text, index, "[", "]")
        if batch is not None:
            values, index, closed = batch
            items.extend(values)
            if closed:
                return items, index
        else:
            start = index
            item, index = await _value(text, index, pacer)
            items.append(item)
            runs.member(index - start)
            index = _skip(text, index)
            separator = text[index : index + 1]
            if separator == "]":
                return items, index + 1
            if separator != ",":
                raise json.JSONDecodeError("Expecting ',' delimiter", text, index)
            index += 1
        index = _skip(text, index)
        if text[index : index + 1] == "]":
            raise json.JSONDecodeError("Expecting value", text, index)
        await pacer.pause()


async def _object(text: str, index: int, pacer: Pacer) -> tuple[dict[str, Any], int]:
    """The object whose ``{`` is just before ``index``, and the index after its ``}``."""
    result: dict[str, Any] = {}
    index = _skip(text, index)
    if text[index : index + 1] == "}":
        return result, index + 1
    runs = _Runs()
    while True:
        if text[index : index + 1] != '"':
            raise json.JSONDecodeError(
                "Expecting property name enclosed in double quotes", text, index
            )
        batch = runs.attempt(text, index, "{", "}")
        if batch is not None:
            values, index, closed = batch
            result.update(values)  # like json.loads: a repeated key keeps its place, last value
            if closed:
                return result, index
        else:
            start = index
            key, index = json.decoder.scanstring(text, index + 1)  # type: ignore[attr-defined]
            index = _skip(text, index)
            if text[index : index + 1] != ":":
                raise json.JSONDecodeError("Expecting ':' delimiter", text, index)
            index = _skip(text, index + 1)
            result[key], index = await _value(text, index, pacer)
            runs.member(index - start)
            index = _skip(text, index)
            separator = text[index : index + 1]
            if separator == "}":
                return result, index + 1
            if separator != ",":
                raise json.JSONDecodeError("Expecting ',' delimiter", text, index)
            index += 1
        index = _skip(text, index)
        await pacer.pause()


BATCH_CUTS = 2
"""How many commas (from the end of a window) :func:`_batch` tries as the end of a run."""

SMALL_MEMBER = 256
"""Members shorter than this (in characters) are worth decoding in runs."""

MAX_BACKOFF = 1 << 14
"""Most members decoded one by one between two failed attempts at a run."""


class _Runs:
    """When a large container's members are decoded in runs (:func:`_batch`) and when one by one.

    Runs are tried after a small member only (a large one costs little per character on its own);
    after a failed attempt, the next one waits for twice as many members as the last wait, so
    failed attempts cost a bounded share of the work whatever the text.
    """

    def __init__(self) -> None:
        self._last_size = SMALL_MEMBER  # the first member is decoded on its own
        self._wait = 0
        self._backoff = 1

    def attempt(self, text: str, index: int, opening: str, closing: str) -> Any:
        if self._last_size >= SMALL_MEMBER or self._wait > 0:
            return None
        batch = _batch(text, index, opening, closing)
        if batch is None:
            self._backoff = min(self._backoff * 2, MAX_BACKOFF)
            self._wait = self._backoff
        else:
            self._backoff = 1
        return batch

    def member(self, size: int) -> None:
        self._last_size = size
        self._wait = max(0, self._wait - 1)


def _batch(text: str, index: int, opening: str, closing: str) -> tuple[Any, int, bool] | None:
    """Many members of a large container decoded in one C call, or ``None``.

    ``index`` is where a member starts (an array element, or an object's key), at the top level
    of the container. Taken from a window of the text: the rest of the container, when it ends
    in the window; else a run of members up to one of the last commas of the window, decoded as
    ``opening + run + closing``. That text decodes completely only when the comma is one of the
    container's own: a comma inside a string leaves the string unterminated, one inside a nested
    container leaves a bracket unclosed. Returns the members (a list, or a dict), the index after
    the container (``True``) or after the comma (``False``).
    """
    window = text[index : index + RUN_CHARS]
    if closing in window:
        try:
            value, end = _SCAN(opening + window, 0)
        except (StopIteration, json.JSONDecodeError):
            pass
        else:
            return value, index + end - 1, True
    cut = len(window)
    for _ in range(BATCH_CUTS):
        cut = window.rfind(",", 0, cut)
        if cut <= 0:
            return None
        run = opening + window[:cut] + closing
        try:
            value, end = _SCAN(run, 0)
        except (StopIteration, json.JSONDecodeError):
            continue
        if end == len(run):
            return value, index + cut + 1, False
    return None
