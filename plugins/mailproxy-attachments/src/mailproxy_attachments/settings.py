"""Settings of the ``attachments`` plugin.

``[plugins.attachments]`` in TOML, ``MAILPROXY_ATTACHMENTS__*`` in the environment.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

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
        default=False,
        description=(
            "Whether http_url fetches (and endpoint fetches to an explicit [url]) may reach "
            "every loopback, private, link-local and other non-public address. Off by default: "
            "message submitters must not reach the internal network; prefer allowed_networks."
        ),
    )
    allowed_networks: tuple[str, ...] = Field(
        default=(),
        description=(
            "Non-public networks or addresses (CIDR, e.g. 10.20.0.0/16, 127.0.0.1) that http_url "
            "fetches may reach although allow_private_addresses is off: the intranet file "
            "servers an operator trusts. Comma-separated in the environment. The service's own "
            "port on its own addresses stays refused."
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

    @field_validator("allowed_networks", mode="before")
    @classmethod
    def _split_networks(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        for item in value or ():
            try:
                ipaddress.ip_network(str(item), strict=False)
            except ValueError as err:
                raise ValueError(
                    f"{item!r} is not a network or address (expected CIDR such as "
                    "10.0.0.0/8 or an address such as 192.168.1.20)"
                ) from err
        return value

    def networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """``allowed_networks`` parsed."""
        return tuple(ipaddress.ip_network(item, strict=False) for item in self.allowed_networks)
