"""Signed download links for local files: ``<public_base_url>/download/<token>/<filename>``.

A token is ``<payload>.<signature>``. The payload (base64url) holds the base directory, the file's
path inside it and the expiry time; it is encrypted with the instance key when one is configured
(``MAILPROXY_ENCRYPTION_KEY``), so links do not show server paths. The signature is the first
128 bits of HMAC-SHA256 over the payload, keyed by the ``link_secret`` setting or, without it,
by a random key kept in ``<base directory>/.mailproxy-link-key`` (created 0600 on first use,
read by every process that serves or writes that directory; never created by the route).

Every link issued is also written to ``<base directory>/.mailproxy-links/<expiry>-<hash>``
(content: the file's path), which is how the cleanup task finds files whose links expired.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

from mailproxy_core import ConfigurationError, MailProxy, SecretBox

if TYPE_CHECKING:
    from .storage import LocalStorage

KEY_FILE = ".mailproxy-link-key"
INDEX_DIR = ".mailproxy-links"
SIGNATURE_HEX = 32
"""Hex digits of the HMAC kept in a token (128 bits)."""


class InvalidLink(Exception):
    """A token that is malformed, tampered with, or signed with another key."""


@dataclass(frozen=True, slots=True)
class LinkTarget:
    """What a valid token points at."""

    base_path: str
    path: str
    expires_at: int


class LinkSigner:
    """Signs and verifies download links for one kernel."""

    def __init__(self, box: SecretBox, secret: str | None) -> None:
        self._box = box
        self._secret = hashlib.sha256(secret.encode()).digest() if secret else None
        self._keys: dict[str, bytes] = {}
        self.issued_roots: set[str] = set()
        """Base directories this process issued links for (cleaned even if no tenant names them)."""

    @classmethod
    def for_kernel(cls, mp: MailProxy, secret: str | None) -> LinkSigner:
        """The signer of ``mp``: its secret box and the configured ``link_secret``."""
        return cls(mp.secrets, secret)

    async def link(self, storage: LocalStorage, path: str, expires_in: int) -> str:
        """A signed link to ``path`` of ``storage`` valid ``expires_in`` seconds; indexed."""
        assert storage.public_base_url is not None
        expires_at = int(time.time()) + max(1, int(expires_in))
        key = await asyncio.to_thread(self._key_for, storage.base_path, True)
        payload = json.dumps(
            {"d": storage.base_path, "p": path, "e": expires_at}, separators=(",", ":")
        )
        if self._box.enabled:
            payload = self._box.encrypt(payload)
        encoded = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
        token = f"{encoded}.{_sign(key, encoded)}"
        await asyncio.to_thread(_index, storage.base_path, path, expires_at)
        self.issued_roots.add(storage.base_path)
        name = quote(path.rsplit("/", 1)[-1], safe="")
        return f"{storage.public_base_url}/download/{token}/{name}"

    async def verify(self, token: str) -> LinkTarget:
        """The target of a genuine token (expired or not); ``InvalidLink`` otherwise."""
        encoded, dot, signature = token.rpartition(".")
        if not dot or not encoded or len(signature) != SIGNATURE_HEX:
            raise InvalidLink("malformed token")
        try:
            payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
            if payload.startswith("ENC:"):
                payload = self._box.decrypt(payload)
            fields = json.loads(payload)
            target = LinkTarget(str(fields["d"]), str(fields["p"]), int(fields["e"]))
        except (binascii.Error, UnicodeDecodeError, ValueError, KeyError, TypeError) as err:
            raise InvalidLink("undecodable token") from err
        except ConfigurationError as err:  # encrypted with another instance key
            raise InvalidLink("token of another instance") from err
        if not os.path.isabs(target.base_path):
            raise InvalidLink("bad directory")
        key = await asyncio.to_thread(self._key_for, target.base_path, False)
        if not hmac.compare_digest(_sign(key, encoded), signature):
            raise InvalidLink("bad signature")
        return target

    def _key_for(self, base_path: str, create: bool) -> bytes:
        if self._secret is not None:
            return self._secret
        cached = self._keys.get(base_path)
        if cached is not None:
            return cached
        key = _read_or_create_key(base_path, create)
        self._keys[base_path] = key
        return key


def _sign(key: bytes, encoded: str) -> str:
    return hmac.new(key, encoded.encode(), hashlib.sha256).hexdigest()[:SIGNATURE_HEX]


def _read_or_create_key(base_path: str, create: bool) -> bytes:
    path = os.path.join(base_path, KEY_FILE)
    if create and not os.path.exists(path):
        os.makedirs(base_path, exist_ok=True)
        # Written aside, then linked into place: the key file appears whole or not at all, and
        # when two processes race the first one wins and both read its key.
        temporary = f"{path}.{secrets.token_hex(6)}"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(temporary)
    try:
        with open(path, encoding="ascii") as handle:
            key = bytes.fromhex(handle.read().strip())
    except (OSError, ValueError) as err:
        raise InvalidLink("no link key in that directory") from err
    if len(key) != 32:
        raise InvalidLink("unusable link key in that directory")
    return key


def _index(base_path: str, path: str, expires_at: int) -> None:
    directory = os.path.join(base_path, INDEX_DIR)
    os.makedirs(directory, exist_ok=True)
    digest = hashlib.sha256(path.encode()).hexdigest()[:16]
    with open(os.path.join(directory, f"{expires_at}-{digest}"), "w", encoding="utf-8") as f:
        f.write(path)
