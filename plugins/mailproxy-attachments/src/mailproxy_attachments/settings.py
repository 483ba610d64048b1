"""Settings of the ``attachments`` plugin.

``[plugins.attachments]`` in TOML, ``MAILPROXY_ATTACHMENTS__*`` in the environment.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

SETTINGS_SECTION = "attachments"
"""The plugin's name, and so its settings section."""


class AttachmentsSettings(BaseModel):
    """Limits, network safety and caching of attachment fetches.

    Every field can be set in TOML (``[plugins.attachments] timeout = 10``) or in the environment
    (``MAILPROXY_ATTACHMENTS__TIMEOUT=10``). Sizes are MiB/KiB, durations seconds.
    """

    model_config = ConfigDict(frozen=True)

    timeout: float = Field(
        default=30.0,
        gt=0,
        description="Longest time one HTTP fetch (http_url, endpoint) may take, with redirects.",
    )
    max_redirects: int = Field(
        default=5, ge=0, description="Redirects an http_url or endpoint fetch may follow."
    )
    max_size_mb: float = Field(
        default=50.0,
        gt=0,
        description=(
            "Largest attachment fetched, in MiB. Downloads are streamed and stop as soon as they "
            "pass it; the attachment then fails permanently."
        ),
    )
    allow_private_addresses: bool = Field(
        default=True,
        description=(
            "Whether http_url fetches (and endpoint fetches to an explicit [url]) may reach "
            "loopback, private, link-local and other non-public addresses. Allowed by default so "
            "local setups work; turn off where clients must not reach the internal network."
        ),
    )
    max_concurrent_fetches: int = Field(
        default=10,
        ge=1,
        description="Fetches running at once in this process, all messages together.",
    )
    memory_cache_mb: float = Field(
        default=64.0, ge=0, description="Memory cache size in MiB (0 turns it off)."
    )
    memory_cache_max_file_kb: float = Field(
        default=1024.0,
        ge=0,
        description="Files up to this size (KiB) are also cached in memory; all go to disk.",
    )
    memory_cache_ttl: float = Field(
        default=3600.0, gt=0, description="Seconds a file stays in the memory cache."
    )
    disk_cache_dir: Path | None = Field(
        default=None,
        description=(
            "Directory of the disk cache; processes that share it share their cache. Unset: a "
            "private temporary directory, removed at shutdown."
        ),
    )
    disk_cache_mb: float = Field(
        default=1024.0, ge=0, description="Disk cache size in MiB (0 turns it off)."
    )
    disk_cache_ttl: float = Field(
        default=86400.0, gt=0, description="Seconds a file stays in the disk cache."
    )
