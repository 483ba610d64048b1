"""The plugin's own tables, created by its migration steps (component ``ee_bounce``).

* ``ee_bounce_config`` — one row (``id = 1``): the bounce mailbox settings (password encrypted
  with the instance key), the return path, and the mailbox state: ``uidvalidity`` / ``last_uid``
  of the messages already examined, for the server, user and folder recorded in
  ``mailbox_key``, plus ``last_poll_ts`` / ``last_error`` of the latest poll. ``reload_seq``
  grows on every ``reload_bounce`` so that the polling process reconnects, whichever it is.
* ``ee_bounce_suppressions`` — the suppression list: one row per tenant and address (lower
  case), deleted with the tenant.
"""

from __future__ import annotations

import sqlalchemy as sa

from mailproxy_core import MigrationContext, MigrationSpec

COMPONENT = "ee_bounce"

metadata = sa.MetaData()

# The core table the suppressions refer to; declared only so that the foreign key compiles.
_tenants = sa.Table("tenants", metadata, sa.Column("id", sa.Text, primary_key=True))

bounce_config = sa.Table(
    "ee_bounce_config",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("imap_host", sa.Text),
    sa.Column("imap_port", sa.Integer, nullable=False, server_default="993"),
    sa.Column("imap_ssl", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("imap_user", sa.Text),
    sa.Column("imap_password", sa.Text),
    sa.Column("imap_folder", sa.Text, nullable=False, server_default="INBOX"),
    sa.Column("poll_interval", sa.Integer),
    sa.Column("return_path", sa.Text),
    sa.Column("reload_seq", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("mailbox_key", sa.Text),
    sa.Column("uidvalidity", sa.BigInteger),
    sa.Column("last_uid", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("last_poll_ts", sa.BigInteger),
    sa.Column("last_error", sa.Text),
    sa.Column("updated_ts", sa.BigInteger, nullable=False, server_default="0"),
)

suppressions = sa.Table(
    "ee_bounce_suppressions",
    metadata,
    sa.Column(
        "tenant_id",
        sa.Text,
        sa.ForeignKey("tenants.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("address", sa.Text, primary_key=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("bounce_code", sa.Text),
    sa.Column("created_ts", sa.BigInteger, nullable=False),
    sa.Index("ix_ee_bounce_suppressions_created", "tenant_id", "created_ts"),
)


async def _create_v1(ctx: MigrationContext) -> None:
    await ctx.create_tables(bounce_config, suppressions)


MIGRATIONS = [
    MigrationSpec(
        COMPONENT,
        1,
        "tables ee_bounce_config (bounce mailbox settings and state) and "
        "ee_bounce_suppressions (per-tenant suppression list)",
        _create_v1,
    )
]
