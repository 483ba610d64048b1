"""VERP (variable envelope return path), off by default: each message gets its own return path
``<local>+m<message pk>@<domain>``, so a report correlates to its message even when the
reporting server strips the original (no attachment, no Message-ID, no ``X-Genro-Mail-ID``).

The report arrives addressed to that return path; the mailbox server records it in
``Delivered-To`` / ``X-Original-To`` / ``Envelope-To``, and DSNs usually repeat it in ``To``.
The mailbox must accept ``local+anything@domain`` (sub-addressing, on by default in Postfix,
Exim, Dovecot LMTP, Gmail, Microsoft 365).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_TOKEN = "m"


def verp_address(return_path: str, message_pk: int) -> str:
    """``bounces@example.com`` and 42 → ``bounces+m42@example.com``."""
    local, _, domain = return_path.rpartition("@")
    return f"{local}+{_TOKEN}{message_pk}@{domain}"


def verp_message_pk(addresses: Iterable[str], return_path: str | None) -> int | None:
    """The message pk of the first address that is a VERP form of ``return_path``, or None."""
    if not return_path or "@" not in return_path:
        return None
    local, _, domain = return_path.lower().rpartition("@")
    pattern = re.compile(rf"{re.escape(local)}\+{_TOKEN}(\d{{1,18}})@{re.escape(domain)}")
    for address in addresses:
        match = pattern.fullmatch(address.strip().strip("<>").lower())
        if match:
            return int(match.group(1))
    return None
