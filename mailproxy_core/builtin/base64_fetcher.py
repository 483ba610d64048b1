"""The ``base64`` attachment fetcher: the content travels inside the message as ``base64:...``."""

from __future__ import annotations

import base64
import binascii

from ..errors import AttachmentError
from ..models import AttachmentRef, Tenant
from ..plugins.markers import hookimpl
from ..specs import AttachmentFetcherSpec

PREFIX = "base64:"


def decode_base64_attachment(storage_path: str) -> bytes:
    """Decode ``base64:<data>`` (the prefix is optional); invalid data is a permanent error."""
    data = storage_path[len(PREFIX) :] if storage_path.startswith(PREFIX) else storage_path
    try:
        return base64.b64decode("".join(data.split()), validate=True)
    except (binascii.Error, ValueError) as err:
        raise AttachmentError(f"invalid base64 content ({err})", transient=False) from err


class Base64Fetcher:
    """Decodes inline attachments; never touches the network."""

    def __init__(self, mp: object = None) -> None:
        pass

    async def fetch(self, ref: AttachmentRef, tenant: Tenant, max_bytes: int | None) -> bytes:
        content = decode_base64_attachment(ref.storage_path)
        if max_bytes is not None and len(content) > max_bytes:
            raise AttachmentError(
                f"{len(content)} bytes exceed the limit of {max_bytes} bytes", transient=False
            )
        return content


@hookimpl
def mailproxy_register_attachment_fetchers() -> list[AttachmentFetcherSpec]:
    return [AttachmentFetcherSpec("base64", Base64Fetcher)]
