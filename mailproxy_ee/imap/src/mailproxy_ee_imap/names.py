"""Mailbox names and UID sets on the wire (RFC 3501 section 5.1.3 and 9)."""

from __future__ import annotations

import base64
from collections.abc import Iterable


def encode_mailbox_name(name: str) -> str:
    """A folder name as an IMAP argument: modified UTF-7, quoted when needed.

    ``"INBOX"`` stays ``INBOX``; ``"Bounces 2024"`` becomes ``"Bounces 2024"``; ``"Rückläufer"``
    becomes ``R&APw-ckl&AOQ-ufer``.

    Raises:
        ValueError: the name is empty or holds a control character.
    """
    if not name:
        raise ValueError("the folder name is empty")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        raise ValueError("the folder name holds a control character")
    encoded = _modified_utf7(name)
    if any(ch in encoded for ch in ' ()"{\\%*]') or encoded.upper() == "NIL":
        return '"' + encoded.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return encoded


def _modified_utf7(name: str) -> str:
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            raw = "".join(pending).encode("utf-16-be")
            out.append(
                "&" + base64.b64encode(raw).decode("ascii").rstrip("=").replace("/", ",") + "-"
            )
            pending.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out)


def uid_set(uids: Iterable[int]) -> str:
    """A compact UID set: ``[1, 2, 3, 7, 9, 10]`` → ``"1:3,7,9:10"``.

    Raises:
        ValueError: no UID given, or a UID below 1.
    """
    ordered = sorted(set(uids))
    if not ordered:
        raise ValueError("empty UID set")
    if ordered[0] < 1:
        raise ValueError("UIDs start at 1")
    parts: list[str] = []
    start = prev = ordered[0]
    for uid in ordered[1:]:
        if uid == prev + 1:
            prev = uid
            continue
        parts.append(f"{start}:{prev}" if prev != start else str(start))
        start = prev = uid
    parts.append(f"{start}:{prev}" if prev != start else str(start))
    return ",".join(parts)
