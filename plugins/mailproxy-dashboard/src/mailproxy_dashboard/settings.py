"""Settings of the ``dashboard`` plugin: ``[plugins.dashboard]``, ``MAILPROXY_DASHBOARD__*``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

SETTINGS_SECTION = "dashboard"


class DashboardSettings(BaseModel):
    """How long a dashboard sign-in lasts and how many rows a page shows."""

    model_config = ConfigDict(frozen=True)

    session_idle_seconds: int = Field(
        default=1800,
        ge=60,
        description="A session unused this long expires; the user signs in again.",
    )
    session_max_seconds: int = Field(
        default=43200,
        ge=60,
        description="A session expires this long after sign-in, however active it is.",
    )
    page_size: int = Field(
        default=50, ge=5, le=500, description="Messages per page of the message search."
    )
