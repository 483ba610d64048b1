"""mail-proxy plugin ``storage_local``: the ``local`` storage backend and signed download links.

Tenants mount directories with ``storages/add`` ``{"protocol": "local", "config":
{"base_path": "/srv/files"}}`` and name files ``<mount>:<relative path>`` in attachments. Given a
``public_base_url`` (the kernel passes the one of ``large_file_config`` for rewritten large
attachments) the backend's ``url()`` answers signed ``/download/<token>/<filename>`` links, served
by this plugin's public route; a background task deletes files once their link expired.
Settings live in ``[plugins.storage_local]`` (``StorageLocalSettings``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mailproxy_core import (
    BackgroundTaskSpec,
    MailProxy,
    RouteSpec,
    SettingsSpec,
    StorageBackendSpec,
    hookimpl,
)

from .cleanup import delete_expired_links, run_link_cleanup
from .route import DOWNLOAD_PREFIX, build_blueprint
from .settings import SETTINGS_SECTION, StorageLocalSettings
from .state import state_of
from .storage import LocalStorage

__version__ = "0.1.0"

__all__ = ["LocalStorage", "StorageLocalSettings", "delete_expired_links"]


def build_storage(mp: MailProxy, config: Mapping[str, Any]) -> LocalStorage:
    """The backend of one mount (or of a ``large_file_config`` directory)."""
    state = state_of(mp)
    return LocalStorage.from_config(config, signer=state.signer, allowed_roots=state.allowed_roots)


@hookimpl
def mailproxy_register_settings() -> list[SettingsSpec]:
    """The ``[plugins.storage_local]`` section."""
    return [SettingsSpec(SETTINGS_SECTION, StorageLocalSettings)]


@hookimpl
def mailproxy_register_storage_backends() -> list[StorageBackendSpec]:
    """The ``local`` protocol."""
    return [StorageBackendSpec("local", build_storage)]


@hookimpl
def mailproxy_register_routes() -> list[RouteSpec]:
    """``GET /download/<token>/<filename>``, answered without credentials."""
    return [RouteSpec("storage_local_download", build_blueprint(), public_paths=(DOWNLOAD_PREFIX,))]


@hookimpl
def mailproxy_register_background_tasks() -> list[BackgroundTaskSpec]:
    """Deletes files whose download link expired."""
    return [BackgroundTaskSpec("storage_local_link_cleanup", run_link_cleanup)]
