"""Secrets at rest, secret masking and admin-token hashing (docs/architecture.md).

Stored secrets (SMTP/IMAP passwords, client-auth credentials, signing secrets, storage
credentials) are encrypted with AES-256-GCM and stored as ``ENC:<base64(nonce | ciphertext | tag)>``
with a fresh 12-byte nonce per value. The key is the base64 encoding of 32 random bytes, read from
``MAILPROXY_ENCRYPTION_KEY`` or from the file named by ``MAILPROXY_ENCRYPTION_KEY_FILE``. An invalid
key stops startup; a missing key is allowed (secrets are then stored in plaintext, with one warning
per process), so that a development instance runs with no configuration at all.

Values that do not start with ``ENC:`` are plaintext stored before a key was configured and are
returned unchanged by :meth:`SecretBox.decrypt`; they are encrypted the next time they are written.
A consequence of this convention: without a key, a secret whose plaintext itself starts with
``ENC:`` cannot be told apart from an encrypted one and will not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import secrets
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import ConfigurationError

if TYPE_CHECKING:
    from .settings import Settings

__all__ = [
    "DEFAULT_SECRET_KEYS",
    "ENCRYPTED_PREFIX",
    "KEY_GENERATION_HINT",
    "MASK",
    "SecretBox",
    "decode_key",
    "generate_key",
    "hash_token",
    "is_secret_key",
    "mask_secrets",
    "new_token",
    "secret_box_from_settings",
    "verify_token",
]

logger = logging.getLogger(__name__)

ENCRYPTED_PREFIX = "ENC:"
"""Marks a stored value as encrypted by :class:`SecretBox`."""

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16

MASK = "***"
"""What :func:`mask_secrets` puts in place of a secret value."""

KEY_GENERATION_HINT = (
    "generate one with: "
    'python -c "import os,base64;print(base64.b64encode(os.urandom(32)).decode())"'
)

DEFAULT_SECRET_KEYS: frozenset[str] = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "secret",
        "token",
        "api_key",
        "apikey",
        "api_token",
        "api_key_hash",
        "access_token",
        "refresh_token",
        "auth_token",
        "bearer_token",
        "session_token",
        "report_signing_secret",
        "signing_secret",
        "client_secret",
        "access_key",
        "secret_key",
        "secret_access_key",
        "private_key",
        "encryption_key",
        "credentials",
        "credentials_json",
        "authorization",
    }
)
"""Key names whose values :func:`mask_secrets` hides.

A key also counts as secret when it ends with ``_<name>`` for one of these names, so
``imap_password``, ``smtp_password`` or ``x_api_key`` are masked too. Matching ignores case and
treats ``-`` as ``_`` (HTTP header names such as ``X-Api-Key``).
"""

_unencrypted_warning_lock = threading.Lock()
_unencrypted_warning_logged = False


class SecretBox:
    """Encrypts and decrypts secrets for storage; a box without a key passes values through.

    Build one per app with :func:`secret_box_from_settings` and hand it to the repositories that
    store secrets. Instances are immutable and safe to share between tasks and threads.
    """

    __slots__ = ("_aead",)

    def __init__(self, key: bytes | None) -> None:
        """Create a box for a raw 32-byte ``key``, or a pass-through box when ``key`` is None.

        Raises:
            ConfigurationError: ``key`` is not exactly 32 bytes long.
        """
        if key is not None and len(key) != KEY_BYTES:
            raise ConfigurationError(
                f"Invalid encryption key: expected exactly {KEY_BYTES} bytes, got {len(key)}; "
                f"{KEY_GENERATION_HINT}"
            )
        self._aead: AESGCM | None = AESGCM(key) if key is not None else None

    @property
    def enabled(self) -> bool:
        """True when a key is configured and :meth:`encrypt` really encrypts."""
        return self._aead is not None

    def encrypt(self, plaintext: str) -> str:
        """Return ``ENC:<base64(nonce | ciphertext | tag)>`` for ``plaintext``.

        Every call uses a fresh random nonce, so encrypting the same value twice gives different
        results. Without a key the plaintext is returned unchanged.
        """
        if self._aead is None:
            return plaintext
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), None)
        return ENCRYPTED_PREFIX + base64.b64encode(nonce + sealed).decode("ascii")

    def decrypt(self, value: str) -> str:
        """Return the plaintext of a stored value.

        A value without the ``ENC:`` prefix is plaintext stored before a key was configured and is
        returned as-is.

        Raises:
            ConfigurationError: the value is encrypted but no key is configured, or the key does
                not match the one it was encrypted with (or the stored value was altered).
        """
        if not value.startswith(ENCRYPTED_PREFIX):
            return value
        if self._aead is None:
            raise ConfigurationError(
                "A stored secret is encrypted but no encryption key is configured: set "
                "MAILPROXY_ENCRYPTION_KEY (or MAILPROXY_ENCRYPTION_KEY_FILE) to the key the "
                "secrets were encrypted with."
            )
        try:
            raw = base64.b64decode(value[len(ENCRYPTED_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            raise self._mismatch() from None
        if len(raw) < NONCE_BYTES + TAG_BYTES:
            raise self._mismatch()
        try:
            plain = self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], None)
        except InvalidTag:
            raise self._mismatch() from None
        return plain.decode("utf-8")

    def encrypt_fields(self, mapping: Mapping[str, Any], fields: Iterable[str]) -> dict[str, Any]:
        """Return a copy of ``mapping`` with the string values of ``fields`` encrypted.

        Missing fields and non-string values (``None``) are left alone, e.g.
        ``box.encrypt_fields(client_auth, ("token", "password"))``.
        """
        return self._map_fields(mapping, fields, self.encrypt)

    def decrypt_fields(self, mapping: Mapping[str, Any], fields: Iterable[str]) -> dict[str, Any]:
        """Return a copy of ``mapping`` with the string values of ``fields`` decrypted.

        Raises:
            ConfigurationError: as :meth:`decrypt`.
        """
        return self._map_fields(mapping, fields, self.decrypt)

    @staticmethod
    def _map_fields(
        mapping: Mapping[str, Any], fields: Iterable[str], convert: Any
    ) -> dict[str, Any]:
        result = dict(mapping)
        for name in fields:
            value = result.get(name)
            if isinstance(value, str):
                result[name] = convert(value)
        return result

    @staticmethod
    def _mismatch() -> ConfigurationError:
        return ConfigurationError(
            "A stored secret cannot be decrypted: the encryption key does not match the key it was "
            "encrypted with, or the stored value was altered. Set MAILPROXY_ENCRYPTION_KEY to the "
            "original key."
        )

    def __repr__(self) -> str:
        return f"SecretBox(enabled={self.enabled})"


def generate_key() -> str:
    """Return a new random encryption key: the standard base64 encoding of 32 bytes."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")


def decode_key(text: str, source: str = "MAILPROXY_ENCRYPTION_KEY") -> bytes:
    """Decode a base64 key (standard or URL-safe alphabet, padding optional) into 32 bytes.

    ``source`` names where the key came from, for the error message.

    Raises:
        ConfigurationError: the text is not base64 or does not decode to exactly 32 bytes.
    """
    compact = "".join(text.split())
    compact += "=" * (-len(compact) % 4)
    alphabet = b"-_" if ("-" in compact or "_" in compact) else None
    try:
        key = base64.b64decode(compact, altchars=alphabet, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(
            f"Invalid encryption key in {source}: it is not valid base64. Expected the base64 "
            f"encoding of exactly {KEY_BYTES} random bytes; {KEY_GENERATION_HINT}"
        ) from None
    if len(key) != KEY_BYTES:
        raise ConfigurationError(
            f"Invalid encryption key in {source}: it decodes to {len(key)} bytes. Expected the "
            f"base64 encoding of exactly {KEY_BYTES} random bytes; {KEY_GENERATION_HINT}"
        )
    return key


def secret_box_from_settings(settings: Settings) -> SecretBox:
    """Build the app's :class:`SecretBox` from ``encryption_key`` or ``encryption_key_file``.

    Called once at startup (it may read the key file). Without any key, logs a warning once per
    process that secrets are stored unencrypted and returns a pass-through box.

    Raises:
        ConfigurationError: the key is invalid, or the key file is missing or unreadable.
    """
    if settings.encryption_key is not None:
        source = settings.source_of("encryption_key")
        return SecretBox(decode_key(settings.encryption_key.get_secret_value(), source))
    if settings.encryption_key_file is not None:
        source = settings.source_of("encryption_key_file")
        path = Path(settings.encryption_key_file)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(
                f"Cannot read the encryption key file {path} ({source}): "
                f"{exc.strerror or exc}. Expected a readable file containing the base64 key; "
                f"{KEY_GENERATION_HINT}"
            ) from None
        except UnicodeDecodeError:
            raise ConfigurationError(
                f"Invalid encryption key file {path} ({source}): it is not text. Expected a file "
                f"containing the base64 key; {KEY_GENERATION_HINT}"
            ) from None
        return SecretBox(decode_key(text, f"the file {path} ({source})"))
    _warn_unencrypted_once()
    return SecretBox(None)


def _warn_unencrypted_once() -> None:
    global _unencrypted_warning_logged
    with _unencrypted_warning_lock:
        if _unencrypted_warning_logged:
            return
        _unencrypted_warning_logged = True
    logger.warning(
        "No encryption key configured: passwords and credentials are stored unencrypted. "
        "Set MAILPROXY_ENCRYPTION_KEY; %s",
        KEY_GENERATION_HINT,
    )


def is_secret_key(key: str, secret_keys: frozenset[str] = DEFAULT_SECRET_KEYS) -> bool:
    """True when a mapping key names a secret (exact name or ``_<name>`` suffix, any case)."""
    normalized = key.lower().replace("-", "_")
    if normalized in secret_keys:
        return True
    return any(normalized.endswith("_" + name) for name in secret_keys)


def _maskable(value: Any) -> bool:
    """Whether a secret key's value must be hidden: anything but ``None`` and a boolean flag."""
    return value is not None and not isinstance(value, bool)


def mask_secrets(obj: Any, secret_keys: frozenset[str] = DEFAULT_SECRET_KEYS) -> Any:
    """Return a copy of ``obj`` with the values of secret keys replaced by ``"***"``.

    Walks mappings, lists and tuples recursively (for the command log and for log records);
    ``None`` values stay ``None`` so that "no password" remains visible, and booleans stay as
    they are (``has_credentials: true`` is a flag, not a secret). Other objects are returned
    unchanged.
    """
    if isinstance(obj, Mapping):
        masked: dict[Any, Any] = {}
        for key, value in obj.items():
            if _maskable(value) and isinstance(key, str) and is_secret_key(key, secret_keys):
                masked[key] = MASK
            else:
                masked[key] = mask_secrets(value, secret_keys)
        return masked
    if isinstance(obj, list):
        return [mask_secrets(item, secret_keys) for item in obj]
    if isinstance(obj, tuple):
        return tuple(mask_secrets(item, secret_keys) for item in obj)
    return obj


_TOKEN_SCHEME = "sha256"


def new_token() -> str:
    """Return a new admin or API token: 32 random bytes, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """Return ``sha256$<hex digest>`` of ``token``, the form stored instead of the token.

    A plain SHA-256 is enough here, unlike for passwords: tokens made by :func:`new_token` carry
    256 bits of randomness, so neither precomputed tables (what a salt defeats) nor guessing
    (what a slow hash such as scrypt slows down) has any chance. An operator who sets
    ``MAILPROXY_API_TOKEN`` by hand should likewise choose a long random value.
    """
    digest = hashlib.sha256(token.encode("utf-8")).hexdigest()
    return f"{_TOKEN_SCHEME}${digest}"


def verify_token(token: str, hashed: str) -> bool:
    """True when ``token`` matches ``hashed`` (from :func:`hash_token`); constant-time compare.

    An empty token, or a hash in an unknown format, never matches.
    """
    scheme, sep, _digest = hashed.partition("$")
    if not token or not sep or scheme != _TOKEN_SCHEME:
        return False
    return hmac.compare_digest(hash_token(token), hashed)
