"""Settings of the ``ee_bounce`` plugin: ``[plugins.ee_bounce]`` in TOML, ``MAILPROXY_EE_BOUNCE__*``
variables."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

SECTION = "ee_bounce"


class BounceSettings(BaseModel):
    """Defaults of the bounce mailbox reader and the suppression rule.

    Every field can be set in TOML (``[plugins.ee_bounce] poll_interval = 30``) or in the
    environment (``MAILPROXY_EE_BOUNCE__POLL_INTERVAL=30``). Durations are seconds. The mailbox
    itself (server, user, password, folder, return path) is configured through the API
    (``instance/set_bounce_config``) and stored in the database.
    """

    model_config = ConfigDict(frozen=True)

    poll_interval: int = Field(
        default=60,
        ge=1,
        description=(
            "Seconds between two reads of the bounce mailbox when the stored bounce "
            "configuration sets no `poll_interval` of its own."
        ),
    )
    suppress: bool = Field(
        default=True,
        description=(
            "A hard bounce or a spam complaint adds the recipient to its tenant's suppression "
            "list; later messages of that tenant are sent without it."
        ),
    )
    imap_timeout: float = Field(
        default=30.0,
        gt=0,
        description="Limit for one IMAP operation (connect, login, search, fetch, store).",
    )
    fetch_batch: int = Field(
        default=50,
        ge=1,
        le=1000,
        description=(
            "Messages fetched, recorded and flagged together. The mailbox position is saved "
            "after each batch, so an interruption re-reads at most one batch (without adding "
            "events twice)."
        ),
    )
    idle: bool = Field(
        default=True,
        description=(
            "Keep a second connection in IMAP IDLE where the server offers it, so a new notice "
            "is read within a second or two instead of at the next poll."
        ),
    )
    verp: bool = Field(
        default=False,
        description=(
            "Give each message its own return path `<local>+m<id>@<domain>` derived from the "
            "configured return path, so that reports correlate even when the reporting server "
            "strips the original. The bounce mailbox must accept sub-addresses (`local+tag@`)."
        ),
    )
    config_refresh: float = Field(
        default=5.0,
        gt=0,
        description=(
            "Seconds between two reads of the stored return path by processes that send, so a "
            "`set_bounce_config` made through another process applies within this delay."
        ),
    )
