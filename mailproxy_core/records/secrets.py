"""Secrets inside the free-form objects of accounts (``options``) and storages (``config``).

Such objects are transport- or backend-specific, so which keys hold credentials is decided by
name (``crypto.is_secret_key``) with a few names that cloud storage configs use on top of the
defaults (``account_key``, ``connection_string`` ...). Three operations:

* :func:`seal` encrypts every secret-named string value, at any depth, before writing;
* :func:`unseal` decrypts them again, for internal use only (transports, storage backends);
* :func:`redact` removes secret-named values for API responses and reports where they were, so a
  client can see *that* a credential is set without ever seeing it (docs/api.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..crypto import DEFAULT_SECRET_KEYS, SecretBox, is_secret_key

CONFIG_SECRET_KEYS: frozenset[str] = DEFAULT_SECRET_KEYS | {
    "key",
    "account_key",
    "connection_string",
    "credential",
    "sas",
    "sas_url",
    "service_account_info",
}
"""Key names treated as secrets in account options and storage configs.

With ``key`` in the set, any ``*_key`` name counts (``account_key``, ``shared_key``); an
``*_id`` such as ``aws_access_key_id`` does not: it identifies, it does not authenticate.
"""


def is_config_secret(key: object) -> bool:
    """Whether a key of an options/config object names a secret."""
    return isinstance(key, str) and is_secret_key(key, CONFIG_SECRET_KEYS)


def secret_value_errors(value: Any, field: str) -> list[dict[str, Any]]:
    """422 entries for secret-named keys of ``value`` whose value is not a string (or null).

    Secrets are encrypted one value at a time, so they must be text; ``field`` is the
    parameter name used as the prefix of each reported location (``options.api_key``).
    """
    errors: list[dict[str, Any]] = []

    def visit(node: Any, path: str) -> None:
        if isinstance(node, Mapping):
            for key, item in node.items():
                where = f"{path}.{key}"
                if is_config_secret(key) and item is not None and not isinstance(item, str):
                    errors.append(
                        {
                            "field": where,
                            "message": "a secret must be a string (it is encrypted as text)",
                            "type": "string_type",
                        }
                    )
                else:
                    visit(item, where)
        elif isinstance(node, list):
            for index, item in enumerate(node):
                visit(item, f"{path}.{index}")

    visit(value, field)
    return errors


def _map_secrets(value: Any, convert: Callable[[str], str]) -> Any:
    if isinstance(value, Mapping):
        return {
            key: (
                convert(item)
                if is_config_secret(key) and isinstance(item, str)
                else _map_secrets(item, convert)
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_map_secrets(item, convert) for item in value]
    return value


def seal(box: SecretBox, value: Any) -> Any:
    """A copy of ``value`` with every secret-named string encrypted (``ENC:...``)."""
    return _map_secrets(value, box.encrypt)


def unseal(box: SecretBox, value: Any) -> Any:
    """A copy of ``value`` with every secret-named string decrypted.

    Raises:
        ConfigurationError: a value is encrypted with another key, or no key is configured.
    """
    return _map_secrets(value, box.decrypt)


def redact(value: Any) -> tuple[Any, list[str]]:
    """``value`` without its secret-named entries, and the dotted paths of those removed.

    A secret-named key whose value is ``None`` is kept (nothing is set there). Paths are sorted;
    list items appear by index (``servers.0.password``).
    """
    removed: list[str] = []

    def strip(node: Any, path: str) -> Any:
        if isinstance(node, Mapping):
            kept: dict[Any, Any] = {}
            for key, item in node.items():
                where = f"{path}.{key}" if path else str(key)
                if is_config_secret(key) and item is not None:
                    removed.append(where)
                else:
                    kept[key] = strip(item, where)
            return kept
        if isinstance(node, list):
            return [strip(item, f"{path}.{index}") for index, item in enumerate(node)]
        return node

    public = strip(value, "")
    return public, sorted(removed)


def _secret_keys(auth: Mapping[str, Any]) -> list[str]:
    return [key for key in auth if isinstance(key, str) and is_secret_key(key)]


def seal_payload(box: SecretBox, payload: Mapping[str, Any]) -> Mapping[str, Any]:
    """``payload`` with the secret values of its attachments' ``auth`` encrypted.

    Returns ``payload`` itself (no copy) when no attachment carries ``auth``, which is the
    common case and keeps enqueueing cheap.
    """
    attachments = payload.get("attachments")
    if not isinstance(attachments, list) or not any(
        isinstance(spec, dict) and isinstance(spec.get("auth"), dict) for spec in attachments
    ):
        return payload
    sealed = []
    for spec in attachments:
        auth = spec.get("auth") if isinstance(spec, dict) else None
        if isinstance(auth, dict):
            spec = {**spec, "auth": box.encrypt_fields(auth, _secret_keys(auth))}
        sealed.append(spec)
    return {**payload, "attachments": sealed}


def open_attachment_auth(box: SecretBox, auth: Mapping[str, Any]) -> dict[str, Any]:
    """An attachment's stored ``auth`` with its secret values decrypted, for fetching.

    Raises:
        ConfigurationError: a value is encrypted with another key (see ``SecretBox.decrypt``).
    """
    return box.decrypt_fields(auth, _secret_keys(auth))
