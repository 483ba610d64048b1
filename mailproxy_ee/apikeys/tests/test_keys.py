"""Key form, stored form and what each scope allows (no database)."""

from __future__ import annotations

import pytest

from mailproxy_core import RouteInfo, verify_token
from mailproxy_ee_apikeys.keys import (
    KEY_PREFIX,
    KeyScope,
    allows,
    decode_scopes,
    encode_scopes,
    key_hash,
    looks_like_key,
    new_key,
    requirement,
)

SEND, READ, MANAGE = KeyScope.SEND, KeyScope.READ, KeyScope.MANAGE


def route(entity: str, method: str, http_method: str, scope: str = "tenant_scoped") -> RouteInfo:
    return RouteInfo(entity, method, http_method, f"/{entity}/{method}", scope)


def test_a_key_has_the_prefix_and_256_random_bits() -> None:
    keys = {new_key() for _ in range(200)}
    assert len(keys) == 200
    for key in keys:
        assert key.startswith(KEY_PREFIX) and len(key) == len(KEY_PREFIX) + 43
        assert looks_like_key(key)
    assert not looks_like_key("test-admin-token")
    assert not looks_like_key(KEY_PREFIX + "short")
    assert not looks_like_key(next(iter(keys)) + "x")
    assert not looks_like_key(KEY_PREFIX + "!" * 43)


def test_only_the_hash_is_kept_and_it_verifies_the_key() -> None:
    key = new_key()
    stored = key_hash(key)
    assert key not in stored and key[len(KEY_PREFIX) :] not in stored
    assert stored.startswith("sha256$")
    assert verify_token(key, stored)
    assert not verify_token(new_key(), stored)


def test_scopes_are_stored_in_a_fixed_order_and_checked() -> None:
    assert encode_scopes(["manage", "send", "send"]) == "send,manage"
    assert decode_scopes("send,manage") == frozenset({SEND, MANAGE})
    assert decode_scopes("send,admin") == frozenset({SEND})  # never widened
    with pytest.raises(ValueError, match="'admin'"):
        encode_scopes(["send", "admin"])
    with pytest.raises(ValueError, match="at least one"):
        encode_scopes([])


@pytest.mark.parametrize(
    ("called", "http_method", "allowed", "named"),
    [
        (route("messages", "add", "POST", "any_principal"), "POST", {SEND, MANAGE}, SEND),
        (route("messages", "add_batch", "POST", "any_principal"), "POST", {SEND, MANAGE}, SEND),
        (route("messages", "list", "GET"), "GET", {SEND, READ, MANAGE}, READ),
        (route("messages", "get", "GET"), "GET", {SEND, READ, MANAGE}, READ),
        (
            route("messages", "count_active", "GET", "any_principal"),
            "GET",
            {SEND, READ, MANAGE},
            READ,
        ),
        (route("messages", "delete", "POST", "any_principal"), "POST", {MANAGE}, MANAGE),
        (route("messages", "cleanup", "POST"), "POST", {MANAGE}, MANAGE),
        # A write also served with GET (reference clients) stays a write.
        (route("messages", "cleanup", "POST"), "GET", {MANAGE}, MANAGE),
        (route("messages", "retry", "POST"), "GET", {MANAGE}, MANAGE),
        (route("accounts", "list", "GET"), "GET", {READ, MANAGE}, READ),
        (route("instance", "get", "GET", "any_principal"), "GET", {READ, MANAGE}, READ),
        (route("accounts", "add", "POST"), "POST", {MANAGE}, MANAGE),
        (route("api_keys", "add", "POST"), "POST", {MANAGE}, MANAGE),
        (route("api_keys", "list", "GET"), "GET", {READ, MANAGE}, READ),
        (None, "GET", {READ, MANAGE}, READ),
        (None, "HEAD", {READ, MANAGE}, READ),
        (None, "POST", {MANAGE}, MANAGE),
        (None, "DELETE", {MANAGE}, MANAGE),
    ],
)
def test_what_each_scope_allows(
    called: RouteInfo | None, http_method: str, allowed: set[KeyScope], named: KeyScope
) -> None:
    needed = requirement(called, http_method)
    assert needed.named is named
    for scope in (SEND, READ, MANAGE):
        assert allows(frozenset({scope}), needed) is (scope in allowed), scope
    assert allows(frozenset({SEND, READ, MANAGE}), needed)
    assert not allows(frozenset(), needed)
