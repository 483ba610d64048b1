"""Settings of the ``ee_pec`` plugin: ``[plugins.ee_pec]`` in TOML, ``MAILPROXY_EE_PEC__*``
variables."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PecSettings(BaseModel):
    """How PEC mailboxes are read and when a missing acceptance becomes ``pec_timeout``.

    Every field can be set in TOML (``[plugins.ee_pec] poll_interval = 30``) or in the
    environment (``MAILPROXY_EE_PEC__POLL_INTERVAL=30``). Durations are seconds.
    """

    model_config = ConfigDict(frozen=True)

    poll_interval: float = Field(
        default=60.0,
        gt=0,
        description=(
            "Seconds between two rounds over every PEC account's mailbox. `instance/run_now` "
            "starts a round at once."
        ),
    )
    acceptance_timeout: float = Field(
        default=1800.0,
        ge=0,
        description=(
            "Seconds after sending without an acceptance or error receipt before a message "
            "gets its one `pec_timeout` event; 0 turns the timeout off."
        ),
    )
    imap_timeout: float = Field(
        default=30.0,
        gt=0,
        description="Limit for one IMAP operation (connect, login, search, fetch) of a poll.",
    )
    concurrent_mailboxes: int = Field(
        default=4,
        ge=1,
        le=100,
        description=(
            "PEC mailboxes read at the same time in one round (each mailbox is read in order)."
        ),
    )
    fetch_batch: int = Field(
        default=20,
        ge=1,
        le=1000,
        description=(
            "Messages fetched, recorded and flagged together. The mailbox position is saved "
            "after each batch, so a failure re-reads at most one batch."
        ),
    )
