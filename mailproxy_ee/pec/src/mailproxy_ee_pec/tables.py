"""The plugin's own tables, created by its migration steps (component ``ee_pec``).

* ``ee_pec_accounts`` — one row per PEC account: the IMAP settings of its mailbox (password
  encrypted with the instance key) and the mailbox state: ``uidvalidity`` / ``last_uid`` of the
  messages already examined, for the server, user and folder recorded in ``mailbox_key``, plus
  ``last_poll_ts`` / ``last_error`` of the latest round. It belongs to the sending account
  (``accounts.pk``): deleting the account, or its tenant, deletes it.
* ``ee_pec_messages`` — the messages sent through a PEC account, so the ``pec_timeout`` task
  knows which ones still wait for an acceptance (``settled_ts`` null) and which already got
  their timeout (``timed_out_ts``). Deleted with the message or the account.
"""

from __future__ import annotations

import sqlalchemy as sa

from mailproxy_core import MigrationContext, MigrationSpec

COMPONENT = "ee_pec"

metadata = sa.MetaData()

# Core tables the plugin's rows refer to; declared here only so that the foreign keys compile
# (this plugin never creates or changes them).
_accounts = sa.Table("accounts", metadata, sa.Column("pk", sa.Text, primary_key=True))
_messages = sa.Table("messages", metadata, sa.Column("pk", sa.BigInteger, primary_key=True))

pec_accounts = sa.Table(
    "ee_pec_accounts",
    metadata,
    sa.Column(
        "account_pk",
        sa.Text,
        sa.ForeignKey("accounts.pk", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("tenant_id", sa.Text, nullable=False),
    sa.Column("account_id", sa.Text, nullable=False),
    sa.Column("imap_host", sa.Text, nullable=False),
    sa.Column("imap_port", sa.Integer, nullable=False),
    sa.Column("imap_ssl", sa.Boolean, nullable=False),
    # null = the sending account's user / password (read at every poll)
    sa.Column("imap_user", sa.Text),
    sa.Column("imap_password", sa.Text),
    sa.Column("imap_folder", sa.Text, nullable=False),
    sa.Column("mailbox_key", sa.Text),
    sa.Column("uidvalidity", sa.BigInteger),
    sa.Column("last_uid", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("last_poll_ts", sa.BigInteger),
    sa.Column("last_error", sa.Text),
    sa.Column("created_ts", sa.BigInteger, nullable=False),
    sa.Column("updated_ts", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("tenant_id", "account_id", name="uq_ee_pec_accounts_tenant_account"),
)

pec_messages = sa.Table(
    "ee_pec_messages",
    metadata,
    sa.Column(
        "message_pk",
        sa.BigInteger,
        sa.ForeignKey("messages.pk", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column(
        "account_pk",
        sa.Text,
        sa.ForeignKey("accounts.pk", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("tenant_id", sa.Text, nullable=False),
    sa.Column("sent_ts", sa.BigInteger, nullable=False),
    sa.Column("settled_ts", sa.BigInteger),
    sa.Column("timed_out_ts", sa.BigInteger),
    sa.Index("ix_ee_pec_messages_waiting", "settled_ts", "timed_out_ts", "sent_ts"),
)


async def _create_v1(ctx: MigrationContext) -> None:
    await ctx.create_tables(pec_accounts, pec_messages)


MIGRATIONS = [
    MigrationSpec(
        COMPONENT,
        1,
        "tables ee_pec_accounts (IMAP settings and mailbox state of PEC accounts) and "
        "ee_pec_messages (messages sent through them, for pec_timeout)",
        _create_v1,
    )
]
