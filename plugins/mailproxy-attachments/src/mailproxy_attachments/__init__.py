"""mail-proxy plugin ``attachments``: the ``http_url``, ``endpoint``, ``filesystem`` and ``storage``
attachment fetchers (docs/attachments.md).

The kernel chooses a fetcher per attachment (explicit ``fetch_mode``, else inferred from the
path) and applies the tenant's ``large_file_config`` to what was fetched. Every fetcher of this
plugin goes through one shared ``FetchService`` per kernel: a two-tier cache keyed by
``content_md5`` or the ``{MD5:<hex>}`` file-name marker, a concurrency limit and a size cap.
Settings live in ``[plugins.attachments]`` (``AttachmentsSettings``); ``docs/attachments.md``
explains modes, caching, limits and the security settings.
"""

from __future__ import annotations

from mailproxy_core import AttachmentFetcherSpec, SettingsSpec, hookimpl

from .filesystem import FilesystemFetcher
from .service import FetchService, service_for
from .settings import SETTINGS_SECTION, AttachmentsSettings
from .storage import StorageFetcher
from .web import EndpointFetcher, HttpUrlFetcher

__version__ = "0.1.0"

__all__ = [
    "AttachmentsSettings",
    "EndpointFetcher",
    "FetchService",
    "FilesystemFetcher",
    "HttpUrlFetcher",
    "StorageFetcher",
    "service_for",
]


@hookimpl
def mailproxy_register_settings() -> list[SettingsSpec]:
    """The ``[plugins.attachments]`` section."""
    return [SettingsSpec(SETTINGS_SECTION, AttachmentsSettings)]


@hookimpl
def mailproxy_register_attachment_fetchers() -> list[AttachmentFetcherSpec]:
    """The four fetch modes of docs/attachments.md besides the kernel's ``base64``."""
    return [
        AttachmentFetcherSpec("http_url", HttpUrlFetcher),
        AttachmentFetcherSpec("endpoint", EndpointFetcher),
        AttachmentFetcherSpec("filesystem", FilesystemFetcher),
        AttachmentFetcherSpec("storage", StorageFetcher),
    ]
