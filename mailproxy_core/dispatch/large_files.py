"""A tenant's ``large_file_config``: reject, warn about, or link large attachments.

``{enabled, max_size_mb, action, storage_url?, public_base_url?, file_ttl_days?}``; a file is
large when it has more than ``max_size_mb`` MiB. ``reject`` ends the message with ``Attachment
'<name>' (<x.x> MB) exceeds limit (<y> MB)``; ``warn`` sends it and logs that text; ``rewrite``
stores the file and appends a download link to the bodies instead of attaching it.

Rewritten files go to the storage named by ``storage_url``, through the registered storage
backends (``mp.storage``):

- ``file:///<directory>`` (or an absolute path): the ``local`` backend on that directory;
- ``<mount>:<prefix>``: the tenant's storage mount ``<mount>`` (any protocol), under ``<prefix>``;
- ``<scheme>://...`` with a scheme a storage backend claims (``StorageBackendSpec.url_schemes``,
  e.g. ``s3://<bucket>/<prefix>``): that backend's ``url_factory`` builds the backend and prefix
  from the URL (``mp.storage_for_url``), with the plugin's own credentials.

Each file is written as ``<prefix>/<expires_ts>-<random>/<filename>`` and its link is the
backend's ``url(path, expires_in)``: cloud backends sign their own URLs; the ``local`` backend,
given ``public_base_url``, answers a signed ``<public_base_url>/download/<token>/<filename>``
link served by its ``/download`` route, and deletes the file once the link expired. A backend
that cannot make a link (``url`` answers ``None``) makes the message fail: a mail with neither
the file nor a link would lose it silently.
"""

from __future__ import annotations

import html
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..errors import AttachmentError, MailproxyError
from ..models import Tenant
from ..records.storages import load_storage
from .compose import Attachment

if TYPE_CHECKING:
    from ..kernel import MailProxy
    from ..protocols import StorageBackend

MIB = 1024 * 1024
"""``max_size_mb`` counts mebibytes, and sizes in messages are shown in the same unit."""

DEFAULT_TTL_DAYS = 7
"""How long links of rewritten files stay valid when ``file_ttl_days`` is not set."""


@dataclass(frozen=True, slots=True)
class LargeFilePolicy:
    """A tenant's enabled ``large_file_config``, validated for use."""

    max_size_mb: float
    action: str
    storage_url: str | None = None
    public_base_url: str | None = None
    ttl_days: float = DEFAULT_TTL_DAYS

    @classmethod
    def of(cls, tenant: Tenant) -> LargeFilePolicy | None:
        """The policy of ``tenant``, or ``None`` when it has none or it is disabled."""
        config = tenant.large_file_config
        if not isinstance(config, Mapping) or not config.get("enabled"):
            return None
        try:
            max_size_mb = float(config["max_size_mb"])
        except (KeyError, TypeError, ValueError):
            return None
        action = str(config.get("action") or "warn")
        return cls(
            max_size_mb=max_size_mb,
            action=action if action in ("warn", "reject", "rewrite") else "warn",
            storage_url=config.get("storage_url") or None,
            public_base_url=config.get("public_base_url") or None,
            ttl_days=float(config.get("file_ttl_days") or DEFAULT_TTL_DAYS),
        )

    @property
    def max_bytes(self) -> int:
        """The largest size, in bytes, that is not "large"."""
        return int(self.max_size_mb * MIB)

    def too_large(self, filename: str, size: int) -> str:
        """``Attachment '<name>' (<x.x> MB) exceeds limit (<y> MB)`` (docs/attachments.md)."""
        return (
            f"Attachment '{filename}' ({size / MIB:.1f} MB) exceeds limit ({self.max_size_mb:g} MB)"
        )


@dataclass(frozen=True, slots=True)
class StoredLink:
    """A rewritten attachment: where it was stored and the link that replaces it."""

    filename: str
    size: int
    path: str
    url: str
    expires_at: int


async def store_large_file(
    mp: MailProxy,
    tenant: Tenant,
    storage_names: frozenset[str],
    attachment: Attachment,
    policy: LargeFilePolicy,
) -> StoredLink:
    """Store ``attachment`` in the policy's storage and return its download link.

    Raises ``AttachmentError``: permanent for a configuration that cannot work (no or unknown
    ``storage_url``, uninstalled backend, a storage that gives no link), transient when the
    storage failed to write.
    """
    size = len(attachment.content)
    what = policy.too_large(attachment.filename, size)
    backend, prefix = await _storage_for(mp, tenant, storage_names, policy, what)
    expires_in = max(1, int(policy.ttl_days * 86400))
    expires_at = int(time.time()) + expires_in
    name = safe_filename(attachment.filename)
    path = f"{prefix}{expires_at}-{secrets.token_hex(8)}/{name}"
    try:
        await backend.write(path, attachment.content)
        url = await backend.url(path, expires_in)
    except MailproxyError as err:
        raise AttachmentError(f"{what}; storing it failed: {err.detail}") from err
    except OSError as err:
        raise AttachmentError(f"{what}; storing it failed: {err}", transient=True) from err
    if not url:
        await _forget(backend, path)
        raise AttachmentError(
            f"{what}; the storage of large_file_config gives no download link for it "
            "(set large_file_config.public_base_url for a local storage)"
        )
    return StoredLink(name, size, path, url, expires_at)


async def _forget(backend: StorageBackend, path: str) -> None:
    try:
        await backend.delete(path)
    except (OSError, MailproxyError):
        pass  # best effort: the message fails either way, with the reason above


async def _storage_for(
    mp: MailProxy,
    tenant: Tenant,
    storage_names: frozenset[str],
    policy: LargeFilePolicy,
    what: str,
) -> tuple[StorageBackend, str]:
    """The backend and path prefix named by ``storage_url``."""
    url = policy.storage_url or ""
    extra: dict[str, Any] = {}
    if policy.public_base_url:
        extra["public_base_url"] = policy.public_base_url
    protocol: str
    config: Mapping[str, Any]
    prefix = ""
    _scheme, has_scheme, _rest = url.partition("://")
    if url.startswith("file://") or url.startswith("/"):
        directory = url[len("file://") :] if url.startswith("file://") else url
        protocol, config = "local", {"base_path": directory}
    elif has_scheme:
        try:
            backend, prefix = mp.storage_for_url(url)
        except MailproxyError as err:
            raise AttachmentError(f"{what}; {err.detail}") from err
        prefix = prefix.strip("/")
        return backend, f"{prefix}/" if prefix else ""
    else:
        mount_name, sep, rest = url.partition(":")
        if not sep or mount_name not in storage_names:
            raise AttachmentError(
                f"{what}; large_file_config.storage_url '{url}' is not usable: give "
                "file:///<directory> or <mount>:<prefix> naming one of the tenant's storages"
            )
        mount = await load_storage(mp, tenant.id, mount_name)
        if mount is None:
            raise AttachmentError(f"{what}; storage '{mount_name}' of storage_url is gone")
        protocol, config = mount.protocol, mount.config
        prefix = rest.strip("/") + "/" if rest.strip("/") else ""
    try:
        return mp.storage(protocol, {**config, **extra}), prefix
    except MailproxyError as err:
        raise AttachmentError(f"{what}; {err.detail}") from err


def safe_filename(filename: str) -> str:
    """``filename`` reduced to one safe path component (no separators, no control characters)."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return name if name not in ("", ".", "..") else "attachment"


def link_text(links: Sequence[StoredLink]) -> dict[str, str]:
    """The text appended to the plain and HTML bodies for attachments replaced by links."""
    intro = "Some attachments were too large to send and can be downloaded instead:"
    plain = [f"\n\n{intro}"]
    items = []
    for link in links:
        until = datetime.fromtimestamp(link.expires_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
        size = f"{link.size / MIB:.1f} MB"
        plain.append(f"- {link.filename} ({size}, until {until}): {link.url}")
        items.append(
            f'<li><a href="{html.escape(link.url)}">{html.escape(link.filename)}</a> '
            f"({size}, until {until})</li>"
        )
    markup = f"<hr><p>{html.escape(intro)}</p><ul>{''.join(items)}</ul>"
    return {"plain": "\n".join(plain) + "\n", "html": markup}
