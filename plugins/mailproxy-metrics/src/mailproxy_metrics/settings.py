"""Settings of the ``metrics`` plugin: ``[plugins.metrics]`` in TOML, ``MAILPROXY_METRICS__*``."""

from __future__ import annotations

from itertools import pairwise

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_DURATION_BUCKETS: tuple[float, ...] = (
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
)
"""Upper bounds (seconds) of ``gmp_send_duration_seconds``: a LAN relay answers in tens of
milliseconds, a slow remote server with a large message takes up to the SMTP DATA timeout."""


class MetricsSettings(BaseModel):
    """What ``GET /metrics`` exposes and how tenant names are looked up.

    Every field can be set in TOML (``[plugins.metrics] tenant_name_ttl = 300``) or in the
    environment (``MAILPROXY_METRICS__TENANT_NAME_TTL=300``).
    """

    model_config = ConfigDict(frozen=True)

    tenant_names: bool = Field(
        default=True,
        description=(
            "Fill the tenant_name label with each tenant's name (read from the database at most "
            "once per tenant_name_ttl, at scrape time). When false, tenant_name repeats the "
            "tenant id and /metrics reads no tenant."
        ),
    )
    tenant_name_ttl: float = Field(
        default=60.0,
        gt=0,
        description="Seconds a set of tenant names read from the database is trusted.",
    )
    duration_buckets: list[float] = Field(
        default=list(DEFAULT_DURATION_BUCKETS),
        min_length=1,
        description=(
            "Upper bounds in seconds of the gmp_send_duration_seconds buckets, increasing "
            "(+Inf is added)."
        ),
    )

    @field_validator("duration_buckets")
    @classmethod
    def _increasing(cls, buckets: list[float]) -> list[float]:
        if any(bound <= 0 for bound in buckets):
            raise ValueError("bucket bounds must be positive numbers of seconds")
        if any(low >= high for low, high in pairwise(buckets)):
            raise ValueError("bucket bounds must be strictly increasing, e.g. 0.1,1,10")
        return buckets
