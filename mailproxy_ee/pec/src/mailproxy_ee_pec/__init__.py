"""mail-proxy EE plugin ``ee_pec``: Italian certified mail (PEC) accounts and receipts."""

from __future__ import annotations

__version__ = "0.1.0"
