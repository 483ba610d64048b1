"""``GET /download/<token>/<filename>``: serves a local file behind a signed, unexpired link.

Public (recipients of a mail have no API token). A token that is malformed, tampered with or
signed with another key, or a file name that is not the linked file's, answers 404 ``not_found``;
a genuine but expired link answers 410 ``link_expired``; a linked file that is gone answers 404.
The file is streamed as an attachment with its type guessed from its name.
"""

from __future__ import annotations

import asyncio
import mimetypes
import os
import time

from quart import Blueprint, Response, send_file

from mailproxy_core import InvalidInput, MailproxyError, NotFound, current_kernel

from .links import InvalidLink
from .state import state_of
from .storage import LocalStorage

DOWNLOAD_PREFIX = "/download/"


class LinkExpired(MailproxyError):
    """A genuine download link past its expiry (HTTP 410)."""

    status = 410
    code = "link_expired"


def build_blueprint() -> Blueprint:
    """A new ``/download`` blueprint (the registration hook runs once per app)."""
    blueprint = Blueprint("storage_local_download", __name__)

    @blueprint.get(f"{DOWNLOAD_PREFIX}<token>/<filename>")
    async def download(token: str, filename: str) -> Response:
        """The linked file, if the link is genuine and not expired."""
        signer = state_of(current_kernel()).signer
        try:
            target = await signer.verify(token)
        except InvalidLink:
            raise NotFound("download link not found (invalid or tampered)") from None
        if target.path.rsplit("/", 1)[-1] != filename:
            raise NotFound("download link not found (the file name does not match)")
        if target.expires_at < time.time():
            raise LinkExpired("download link expired; ask the sender for the file again")
        try:
            real = LocalStorage(target.base_path).resolve(target.path)
        except InvalidInput:
            raise NotFound("download link not found") from None
        if not await asyncio.to_thread(os.path.isfile, real):
            raise NotFound("the linked file is no longer available")
        mime_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        return await send_file(
            real, mimetype=mime_type, as_attachment=True, attachment_filename=filename
        )

    return blueprint
