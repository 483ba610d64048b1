"""Real Dovecot servers on loopback for the IMAP reader's tests."""

from __future__ import annotations

from mailproxy_ee_imap.testing import dovecot, dovecot_tls, imap_mailbox  # noqa: F401  (fixtures)
