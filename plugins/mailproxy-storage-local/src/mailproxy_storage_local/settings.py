"""Settings of the ``storage_local`` plugin.

``[plugins.storage_local]`` in TOML, ``MAILPROXY_STORAGE_LOCAL__*`` in the environment.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr

SETTINGS_SECTION = "storage_local"
"""The plugin's name, and so its settings section."""


class StorageLocalSettings(BaseModel):
    """Where local storages may live, how download links are signed, when files expire."""

    model_config = ConfigDict(frozen=True)

    allowed_roots: tuple[Path, ...] = Field(
        default=(),
        description=(
            "Directories inside which local storages may have their base_path (tenant mounts "
            "and large_file_config file:// directories), symlinks resolved. Tenants create "
            "mounts themselves, so this is what keeps them away from the rest of the disk. "
            "Empty (the default): the local backend is off."
        ),
    )

    link_secret: SecretStr | None = Field(
        default=None,
        min_length=16,
        description=(
            "Key that signs /download links (HMAC-SHA256), at least 16 characters. Unset: each "
            "directory that hands out links gets its own random key, kept in "
            "<directory>/.mailproxy-link-key (0600), shared by every process using it."
        ),
    )
    cleanup_interval: float = Field(
        default=3600.0,
        gt=0,
        description="Seconds between two rounds deleting files whose download link expired.",
    )
