"""Errors of the IMAP reader. Their texts name the server and what failed, never a password."""

from __future__ import annotations


class ImapError(Exception):
    """Any failure talking to an IMAP server (the base class callers catch)."""


class ImapConnectionError(ImapError):
    """The server could not be reached, the TLS handshake failed or the connection dropped."""


class ImapAuthError(ImapError):
    """The server refused the user name and password."""


class ImapFolderError(ImapError):
    """The folder does not exist or cannot be selected."""


class ImapTimeout(ImapError):
    """The server did not answer within the configured timeout."""


class ImapProtocolError(ImapError):
    """The server answered a command with NO/BAD or with something this client cannot read."""
