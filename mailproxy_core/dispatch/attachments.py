"""Fetching a message's attachments through the registered fetchers (API.md §5).

The fetch mode of each attachment is decided by the ``mailproxy_resolve_fetcher`` hook (explicit
``fetch_mode``, else inferred from the path); the fetcher registered under that name does the
work. All attachments of a message are fetched concurrently. A failure names the attachment:
``Attachment fetch failed for <filename>: <reason>``, transient or permanent as the fetcher said.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..crypto import SecretBox
from ..entities.message_views import open_attachment_auth
from ..errors import AttachmentError
from ..models import AttachmentRef, Message, Tenant
from .compose import Attachment

if TYPE_CHECKING:
    from ..kernel import MailProxy

MD5_MARKER = re.compile(r"[_\-. ]?\{MD5:([0-9a-fA-F]{32})\}")
"""``report_{MD5:<hex>}.pdf``: a cache key inside the file name, removed from the sent name."""


def attachment_ref(spec: Mapping[str, Any], secrets: SecretBox) -> AttachmentRef:
    """The ``AttachmentRef`` of one stored attachment spec (its ``auth`` secrets decrypted)."""
    auth = spec.get("auth")
    if isinstance(auth, Mapping):
        auth = open_attachment_auth(secrets, auth)
    return AttachmentRef(
        filename=str(spec.get("filename") or "attachment"),
        storage_path=str(spec.get("storage_path") or ""),
        fetch_mode=spec.get("fetch_mode") or None,
        mime_type=spec.get("mime_type") or None,
        content_md5=spec.get("content_md5") or None,
        auth=auth if isinstance(auth, Mapping) else None,
    )


def delivered_filename(filename: str) -> str:
    """The file name as the recipient sees it: without the ``{MD5:...}`` marker."""
    return MD5_MARKER.sub("", filename)


async def fetch_attachments(
    mp: MailProxy, message: Message, tenant: Tenant | None, storage_names: frozenset[str]
) -> list[Attachment]:
    """Fetch every attachment of ``message`` concurrently, in the order they were given."""
    specs = [s for s in message.payload.get("attachments") or () if isinstance(s, Mapping)]
    owner = tenant or Tenant(id=message.tenant_id)
    refs = [attachment_ref(spec, mp.secrets) for spec in specs]
    fetched = await asyncio.gather(*(_fetch_one(mp, ref, owner, storage_names) for ref in refs))
    return list(fetched)


async def _fetch_one(
    mp: MailProxy, ref: AttachmentRef, tenant: Tenant, storage_names: frozenset[str]
) -> Attachment:
    mode = mp.hooks.resolve_fetcher(ref, tenant, storage_names)
    fetcher = mp.attachment_fetchers.get(mode or "")
    try:
        if fetcher is None:
            available = ", ".join(sorted(mp.attachment_fetchers)) or "none"
            raise AttachmentError(
                f"fetch mode '{mode}' is not available (installed: {available})", transient=False
            )
        content = await fetcher.fetch(ref, tenant, None)
    except AttachmentError as err:
        raise AttachmentError(
            f"Attachment fetch failed for {ref.filename}: {err.detail}", transient=err.transient
        ) from err
    return Attachment(delivered_filename(ref.filename), content, ref.mime_type)
