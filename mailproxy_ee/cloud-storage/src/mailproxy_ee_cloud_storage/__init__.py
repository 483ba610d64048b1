"""mail-proxy enterprise plugin ``ee_cloud_storage``: S3, Google Cloud Storage and Azure Blob.

Registers the storage protocols ``s3`` (s3fs), ``gcs`` (gcsfs) and ``azure`` (adlfs). Tenants
mount a bucket with ``storages/add`` (``{"protocol": "s3", "config": {"bucket": "docs"}}``) and
name objects ``<mount>:<path>`` in attachments; large attachments are rewritten to a mount
(``large_file_config.storage_url: "<mount>:<prefix>"``) or to a storage URL ``s3://``,
``gs://``, ``az://`` reached with the plugin's own credentials (``[plugins.ee_cloud_storage]``,
else the clouds' environments). Links are the stores' presigned URLs; a background task deletes
files whose link expired. Each library is an optional extra of the distribution; a protocol
whose library is missing is refused at ``storages/add`` naming the package to install.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mailproxy_core import (
    BackgroundTaskSpec,
    ConfigurationError,
    MailProxy,
    SettingsSpec,
    StorageBackendSpec,
    hookimpl,
)

from .config import URL_SCHEMES, Protocol, missing_package, parse_mount, parse_url
from .settings import SETTINGS_SECTION, CloudStorageSettings
from .state import forget, state_of
from .storage import CloudStorage, StorageRefused, StorageUnavailable
from .sweep import run_sweep, sweep_expired

__version__ = "0.1.0"

__all__ = [
    "CloudStorage",
    "CloudStorageSettings",
    "StorageRefused",
    "StorageUnavailable",
    "build_storage",
    "storage_for_url",
    "sweep_expired",
]

PROTOCOL_SCHEMES: dict[str, tuple[str, ...]] = {
    protocol: tuple(scheme for scheme, owner in URL_SCHEMES.items() if owner == protocol)
    for protocol in ("s3", "gcs", "azure")
}


def build_storage(mp: MailProxy, protocol: Protocol, config: Mapping[str, Any]) -> CloudStorage:
    """The backend of one tenant mount; ``ConfigurationError`` for a config it cannot use.

    Checks the config offline and that the protocol's library is installed; connects later.
    """
    problem = missing_package(protocol)
    if problem:
        raise ConfigurationError(problem)
    state = state_of(mp)
    return CloudStorage(parse_mount(protocol, config, state.settings), state.pool)


def storage_for_url(mp: MailProxy, url: str) -> tuple[CloudStorage, str]:
    """The backend and path prefix of a storage URL (``s3://bucket/prefix`` ...), using the
    plugin's own credentials; the URL's path becomes the backend's prefix."""
    state = state_of(mp)
    target = parse_url(url, state.settings)
    problem = missing_package(target.protocol)
    if problem:
        raise ConfigurationError(problem)
    return CloudStorage(target, state.pool), ""


def _spec(protocol: Protocol) -> StorageBackendSpec:
    def factory(mp: MailProxy, config: Mapping[str, Any]) -> CloudStorage:
        return build_storage(mp, protocol, config)

    return StorageBackendSpec(
        protocol, factory, url_schemes=PROTOCOL_SCHEMES[protocol], url_factory=storage_for_url
    )


@hookimpl
def mailproxy_register_settings() -> list[SettingsSpec]:
    """The ``[plugins.ee_cloud_storage]`` section."""
    return [SettingsSpec(SETTINGS_SECTION, CloudStorageSettings)]


@hookimpl
def mailproxy_register_storage_backends() -> list[StorageBackendSpec]:
    """The ``s3``, ``gcs`` and ``azure`` protocols and the ``s3://``, ``gs://``, ``az://``
    storage URL schemes."""
    return [_spec("s3"), _spec("gcs"), _spec("azure")]


@hookimpl
def mailproxy_register_background_tasks() -> list[BackgroundTaskSpec]:
    """Deletes rewritten large files whose link expired."""
    return [BackgroundTaskSpec("ee_cloud_storage_sweep", run_sweep)]


@hookimpl
async def mailproxy_shutdown(mp: MailProxy) -> None:
    """Close every cloud client of this kernel."""
    state = forget(mp)
    if state is not None:
        await state.pool.aclose()
