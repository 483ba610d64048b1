"""The IMAP mailbox reader shared by mail-proxy's enterprise plugins (bounces, PEC receipts).

Not a plugin: a library the plugins import. ``ImapMailbox`` reads one mailbox over implicit TLS,
or plain IMAP upgraded with STARTTLS when offered; ``mailproxy_ee_imap.testing`` runs a private
Dovecot server for tests.
"""

from __future__ import annotations

from .client import DEFAULT_TIMEOUT, FetchedMessage, FolderStatus, ImapMailbox, ImapSettings
from .errors import (
    ImapAuthError,
    ImapConnectionError,
    ImapError,
    ImapFolderError,
    ImapProtocolError,
    ImapTimeout,
)
from .names import encode_mailbox_name, uid_set

__all__ = [
    "DEFAULT_TIMEOUT",
    "FetchedMessage",
    "FolderStatus",
    "ImapAuthError",
    "ImapConnectionError",
    "ImapError",
    "ImapFolderError",
    "ImapMailbox",
    "ImapProtocolError",
    "ImapSettings",
    "ImapTimeout",
    "encode_mailbox_name",
    "uid_set",
]
