"""Settings of the ``reporter_http`` plugin: ``[plugins.reporter_http]`` in TOML,
``MAILPROXY_REPORTER_HTTP__*`` variables."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ReporterHttpSettings(BaseModel):
    """How delivery reports are posted to client applications.

    Every field can be set in TOML (``[plugins.reporter_http] batch_size = 500``) or in the
    environment (``MAILPROXY_REPORTER_HTTP__BATCH_SIZE=500``). Durations are seconds.
    """

    model_config = ConfigDict(frozen=True)

    batch_size: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description=(
            "Most events in one POST; a longer backlog goes out in several POSTs, one after the "
            "other, in event order."
        ),
    )
    timeout: float = Field(
        default=30.0,
        gt=0,
        description=(
            "Limit for one POST: sending the report and reading the answer. No answer in time "
            "counts as a failure: the events stay queued and the tenant is retried with back-off."
        ),
    )
    connect_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Limit for opening the connection (TCP and TLS) to the client application.",
    )
