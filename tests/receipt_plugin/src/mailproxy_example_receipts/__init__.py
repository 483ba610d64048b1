"""Example receipt handler: receipts arrive as ``.eml`` files in a directory (docs/plugins.md).

Each poll reads every ``*.eml`` file of ``[plugins.example_receipts] directory``, hands the
receipts to the kernel and logs the outcome of each file in its own table,
``example_receipts_log``. Files are never deleted: reading one again adds nothing, because the
kernel de-duplicates by the receipt's ``dedup_key`` (the file's ``Message-ID``).
"""

from __future__ import annotations

from mailproxy_core import MigrationSpec, ReceiptHandlerSpec, SettingsSpec, hookimpl

from .handler import PLUGIN, DirectoryReceipts, ReceiptFilesSettings, create_tables


@hookimpl
def mailproxy_register_settings() -> list[SettingsSpec]:
    return [SettingsSpec(PLUGIN, ReceiptFilesSettings)]


@hookimpl
def mailproxy_register_migrations() -> list[MigrationSpec]:
    return [MigrationSpec(PLUGIN, 1, "example_receipts_log: one row per file read", create_tables)]


@hookimpl
def mailproxy_register_receipt_handlers() -> list[ReceiptHandlerSpec]:
    return [ReceiptHandlerSpec(PLUGIN, DirectoryReceipts)]
