"""Fetching a message's attachments through the registered fetchers (docs/attachments.md).

The fetch mode of each attachment is decided by the ``mailproxy_resolve_fetcher`` hook (explicit
``fetch_mode``, else inferred from the path); the fetcher registered under that name does the
work (caching, concurrency limits and size caps are the fetchers' business: see the
``attachments`` plugin). All attachments of a message are fetched concurrently. A failure names
the attachment: ``Attachment fetch failed for <filename>: <reason>``, transient or permanent as
the fetcher said.

Then the tenant's ``large_file_config`` is applied to what was fetched (``large_files.py``):
``reject`` ends the message, ``warn`` logs, ``rewrite`` stores the file and replaces it by a
download link appended to the body. The result carries the attachments to send and that text.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..crypto import SecretBox
from ..errors import AttachmentError
from ..models import AttachmentRef, Message, Tenant
from ..records.secrets import open_attachment_auth
from .compose import Attachment
from .large_files import LargeFilePolicy, StoredLink, link_text, store_large_file

if TYPE_CHECKING:
    from ..kernel import MailProxy

log = logging.getLogger(__name__)

MD5_MARKER = re.compile(r"[_\-. ]?\{MD5:([0-9a-fA-F]{32})\}")
"""``report_{MD5:<hex>}.pdf``: a cache key inside the file name, removed from the sent name."""


class FetchedAttachments(list[Attachment]):
    """The attachments to send, in order, and the text that goes with them into the bodies.

    A list of ``Attachment`` (so code that only attaches files can treat it as one) with two
    more attributes: ``extra_body``, ``None`` unless attachments were replaced by download
    links, then ``{"plain": ..., "html": ...}`` for ``compose(..., extra_body=...)``; and
    ``links``, the ``StoredLink`` of each replaced attachment.
    """

    def __init__(
        self,
        attachments: Iterable[Attachment] = (),
        extra_body: Mapping[str, str] | None = None,
        links: Iterable[StoredLink] = (),
    ) -> None:
        super().__init__(attachments)
        self.extra_body = extra_body
        self.links = list(links)


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
) -> FetchedAttachments:
    """Fetch every attachment of ``message`` concurrently and apply ``large_file_config``.

    Attachments keep the order they were given in. Raises ``AttachmentError`` (transient or
    permanent) for a failed fetch, a file over a ``reject`` limit, or a file that could not be
    stored for a ``rewrite``.
    """
    specs = [s for s in message.payload.get("attachments") or () if isinstance(s, Mapping)]
    owner = tenant or Tenant(id=message.tenant_id)
    refs = [attachment_ref(spec, mp.secrets) for spec in specs]
    fetched = await asyncio.gather(*(_fetch_one(mp, ref, owner, storage_names) for ref in refs))
    policy = LargeFilePolicy.of(owner)
    if policy is None:
        return FetchedAttachments(list(fetched))
    kept: list[Attachment] = []
    links: list[StoredLink] = []
    for attachment in fetched:
        size = len(attachment.content)
        if size <= policy.max_bytes:
            kept.append(attachment)
        elif policy.action == "reject":
            raise AttachmentError(policy.too_large(attachment.filename, size), transient=False)
        elif policy.action == "warn":
            log.warning(
                "%s; sent anyway (large_file_config action 'warn')",
                policy.too_large(attachment.filename, size),
                extra={"tenant_id": owner.id, "message_id": message.id},
            )
            kept.append(attachment)
        else:
            links.append(await store_large_file(mp, owner, storage_names, attachment, policy))
    return FetchedAttachments(kept, link_text(links) if links else None, links)


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
