"""Tenant API keys: how they look, how they are stored, and what each scope allows.

A key is ``mpk_`` followed by 43 URL-safe characters (256 random bits, :func:`new_token`). The
prefix lets secret scanners and operators recognise a leaked key; only ``hash_token(key)`` is
stored, so a database dump reveals no usable key.

Scopes (any number per key, at least one):

* ``send`` — ``messages/add``, ``messages/add_batch``, and every read of its tenant's messages
  (``GET /messages/...``);
* ``read`` — every read (``GET``) of its own tenant (a write that is also served with ``GET``,
  such as ``messages/cleanup``, is not a read);
* ``manage`` — everything the tenant's default key may do.

The default key (named ``default``) has every right of its tenant: the scope ``manage``.
Routes reserved to the instance admin stay refused to every tenant key, whatever its scopes.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass

from mailproxy_core import RouteInfo, hash_token, new_token

KEY_PREFIX = "mpk_"
"""Every tenant key starts with this (``mpk_`` + 43 URL-safe characters)."""

KEY_BODY = re.compile(r"^[A-Za-z0-9_-]{43}$")
"""The random part of a key: 32 bytes in URL-safe base64 without padding."""

DEFAULT_KEY_NAME = "default"
"""The name of a tenant's default key (``tenants/create_api_key``), reserved for it."""

KEY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
"""Names of scoped keys: 1-64 letters, digits, ``_``, ``.``, ``-``, starting alphanumeric."""


class KeyScope(enum.StrEnum):
    """What a scoped key may do (see the module docstring)."""

    SEND = "send"
    READ = "read"
    MANAGE = "manage"


ALL_SCOPES: tuple[KeyScope, ...] = (KeyScope.SEND, KeyScope.READ, KeyScope.MANAGE)

SEND_ROUTES: frozenset[tuple[str, str]] = frozenset(
    {("messages", "add"), ("messages", "add_batch")}
)
"""The writes the ``send`` scope allows."""


def new_key() -> str:
    """A new tenant key: ``mpk_`` + 256 random bits in URL-safe base64 (47 characters)."""
    return KEY_PREFIX + new_token()


def looks_like_key(token: str) -> bool:
    """Whether ``token`` has the form of a tenant key (prefix and 43-character body)."""
    return token.startswith(KEY_PREFIX) and KEY_BODY.match(token[len(KEY_PREFIX) :]) is not None


def key_hash(key: str) -> str:
    """The form a key is stored in (``sha256$<hex>``); the key itself is never stored."""
    return hash_token(key)


def encode_scopes(scopes: Iterable[str]) -> str:
    """Scopes as stored: the distinct names in the order of :data:`ALL_SCOPES`, comma-joined.

    Raises:
        ValueError: an unknown scope name, or no scope at all.
    """
    given = set(scopes)
    unknown = sorted(given - {str(scope) for scope in ALL_SCOPES})
    if unknown:
        raise ValueError(f"unknown scope(s) {', '.join(map(repr, unknown))}")
    if not given:
        raise ValueError("at least one scope is needed")
    return ",".join(str(scope) for scope in ALL_SCOPES if scope in given)


def decode_scopes(stored: str) -> frozenset[KeyScope]:
    """The scopes of a stored row (names it does not know are ignored: never widen rights)."""
    known = {str(scope): scope for scope in ALL_SCOPES}
    return frozenset(known[name] for name in stored.split(",") if name in known)


@dataclass(frozen=True, slots=True)
class Requirement:
    """What a call needs: any one of ``accepted`` scopes; ``named`` is the one an error names."""

    accepted: frozenset[KeyScope]
    named: KeyScope


_NEEDS_MANAGE = Requirement(frozenset({KeyScope.MANAGE}), KeyScope.MANAGE)
_NEEDS_READ = Requirement(frozenset({KeyScope.READ, KeyScope.MANAGE}), KeyScope.READ)
_NEEDS_SEND = Requirement(frozenset({KeyScope.SEND, KeyScope.MANAGE}), KeyScope.SEND)
_READS_MESSAGES = Requirement(frozenset(ALL_SCOPES), KeyScope.READ)


def requirement(route: RouteInfo | None, http_method: str) -> Requirement:
    """The scopes that allow a call.

    Args:
        route: the generated route called, or ``None`` for a plugin blueprint route. A generated
            route is a read when its method is declared ``GET``: a write that reference clients
            may also call with ``GET`` (``messages/cleanup``) stays a write.
        http_method: the request's HTTP method; decides alone for a blueprint route (``GET`` and
            ``HEAD`` are reads, anything else needs ``manage``).
    """
    if route is None:
        return _NEEDS_READ if http_method.upper() in ("GET", "HEAD") else _NEEDS_MANAGE
    if (route.entity, route.method) in SEND_ROUTES:
        return _NEEDS_SEND
    if route.http_method == "GET":
        return _READS_MESSAGES if route.entity == "messages" else _NEEDS_READ
    return _NEEDS_MANAGE


def allows(scopes: frozenset[KeyScope], needed: Requirement) -> bool:
    """Whether a key with ``scopes`` may make a call that needs ``needed``."""
    return not scopes.isdisjoint(needed.accepted)
