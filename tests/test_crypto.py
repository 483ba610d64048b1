"""Secrets at rest (AES-256-GCM), key loading, masking and admin-token hashing."""

from __future__ import annotations

import base64
import logging
import os
from pathlib import Path

import pytest

from mailproxy_core import crypto
from mailproxy_core.crypto import (
    SecretBox,
    decode_key,
    generate_key,
    hash_token,
    mask_secrets,
    new_token,
    secret_box_from_settings,
    verify_token,
)
from mailproxy_core.errors import ConfigurationError
from mailproxy_core.settings import Settings, load_settings


@pytest.fixture
def key() -> bytes:
    return os.urandom(32)


@pytest.fixture
def box(key: bytes) -> SecretBox:
    return SecretBox(key)


# -- SecretBox ------------------------------------------------------------------------------


def test_round_trip(box: SecretBox) -> None:
    for plaintext in ("s3cret", "", "pässwörd ✉", "x" * 10_000):
        stored = box.encrypt(plaintext)
        assert stored.startswith("ENC:")
        assert plaintext not in stored[4:] or plaintext == ""
        assert box.decrypt(stored) == plaintext


def test_stored_format_is_nonce_ciphertext_tag(box: SecretBox) -> None:
    stored = box.encrypt("abc")
    raw = base64.b64decode(stored.removeprefix("ENC:"), validate=True)
    assert len(raw) == 12 + len(b"abc") + 16


def test_each_encryption_uses_a_fresh_nonce(box: SecretBox) -> None:
    assert box.encrypt("same") != box.encrypt("same")


def test_plaintext_values_are_returned_as_is(box: SecretBox) -> None:
    assert box.decrypt("stored before a key was configured") == "stored before a key was configured"


def test_box_without_key_passes_values_through() -> None:
    box = SecretBox(None)
    assert not box.enabled
    assert box.encrypt("plain") == "plain"
    assert box.decrypt("plain") == "plain"


def test_enabled(box: SecretBox) -> None:
    assert box.enabled
    assert "enabled=True" in repr(box)


def test_encrypted_value_without_key(box: SecretBox) -> None:
    stored = box.encrypt("s3cret")
    with pytest.raises(ConfigurationError, match="no encryption key is configured"):
        SecretBox(None).decrypt(stored)


def test_wrong_key(box: SecretBox) -> None:
    stored = box.encrypt("s3cret")
    with pytest.raises(ConfigurationError, match="does not match"):
        SecretBox(os.urandom(32)).decrypt(stored)


@pytest.mark.parametrize("position", [0, 12, -1])
def test_tampered_value(box: SecretBox, position: int) -> None:
    raw = bytearray(base64.b64decode(box.encrypt("s3cret").removeprefix("ENC:")))
    raw[position] ^= 0x01
    tampered = "ENC:" + base64.b64encode(bytes(raw)).decode()
    with pytest.raises(ConfigurationError, match="does not match"):
        box.decrypt(tampered)


@pytest.mark.parametrize(
    "stored", ["ENC:not base64!", "ENC:", "ENC:" + base64.b64encode(b"short").decode()]
)
def test_corrupted_value(box: SecretBox, stored: str) -> None:
    with pytest.raises(ConfigurationError, match="does not match"):
        box.decrypt(stored)


def test_key_must_be_32_bytes() -> None:
    with pytest.raises(ConfigurationError, match="32 bytes"):
        SecretBox(b"short")


def test_encrypt_and_decrypt_fields(box: SecretBox) -> None:
    client_auth = {"method": "bearer", "token": "t0ken", "password": None}
    stored = box.encrypt_fields(client_auth, ("token", "password", "absent"))
    assert stored["method"] == "bearer"
    assert stored["token"].startswith("ENC:")
    assert stored["password"] is None
    assert "absent" not in stored
    assert client_auth["token"] == "t0ken"  # the input is not modified
    assert box.decrypt_fields(stored, ("token", "password")) == client_auth


# -- keys -----------------------------------------------------------------------------------


def test_generate_key_is_standard_base64_of_32_bytes() -> None:
    text = generate_key()
    assert len(base64.b64decode(text, validate=True)) == 32
    assert generate_key() != text


def test_decode_standard_and_urlsafe_base64(key: bytes) -> None:
    assert decode_key(base64.b64encode(key).decode()) == key
    assert decode_key(base64.urlsafe_b64encode(key).decode()) == key
    assert decode_key(base64.urlsafe_b64encode(key).decode().rstrip("=")) == key
    assert decode_key(" " + base64.b64encode(key).decode() + "\n") == key


def test_box_from_settings_with_key(key: bytes) -> None:
    settings = Settings.from_values(encryption_key=base64.b64encode(key).decode())
    box = secret_box_from_settings(settings)
    assert box.enabled
    assert SecretBox(key).decrypt(box.encrypt("x")) == "x"


def test_box_from_settings_with_urlsafe_key(key: bytes) -> None:
    settings = load_settings(
        environ={"MAILPROXY_ENCRYPTION_KEY": base64.urlsafe_b64encode(key).decode()}
    )
    assert SecretBox(key).decrypt(secret_box_from_settings(settings).encrypt("x")) == "x"


@pytest.mark.parametrize(
    "value",
    [
        "not base64 at all!",
        base64.b64encode(b"sixteen bytes!!!").decode(),
        base64.b64encode(bytes(range(33))).decode(),
    ],
    ids=["not-base64", "16-bytes", "33-bytes"],
)
def test_invalid_key(value: str) -> None:
    settings = load_settings(environ={"MAILPROXY_ENCRYPTION_KEY": value})
    with pytest.raises(ConfigurationError) as info:
        secret_box_from_settings(settings)
    message = str(info.value)
    assert "MAILPROXY_ENCRYPTION_KEY" in message
    assert "32" in message
    assert "base64.b64encode(os.urandom(32))" in message
    assert value not in message


def test_invalid_key_from_toml_names_the_file(tmp_path: Path) -> None:
    config = tmp_path / "mp.toml"
    config.write_text('encryption_key = "short"\n', encoding="utf-8")
    with pytest.raises(ConfigurationError) as info:
        secret_box_from_settings(load_settings(config, environ={}))
    assert f"encryption_key in {config}" in str(info.value)


def test_key_file(tmp_path: Path, key: bytes) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(base64.b64encode(key).decode() + "\n", encoding="utf-8")
    settings = load_settings(environ={"MAILPROXY_ENCRYPTION_KEY_FILE": str(key_file)})
    assert SecretBox(key).decrypt(secret_box_from_settings(settings).encrypt("x")) == "x"


def test_missing_key_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing-key"
    settings = load_settings(environ={"MAILPROXY_ENCRYPTION_KEY_FILE": str(missing)})
    with pytest.raises(ConfigurationError) as info:
        secret_box_from_settings(settings)
    message = str(info.value)
    assert str(missing) in message
    assert "MAILPROXY_ENCRYPTION_KEY_FILE" in message


def test_key_file_with_invalid_key(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("too short", encoding="utf-8")
    settings = load_settings(environ={"MAILPROXY_ENCRYPTION_KEY_FILE": str(key_file)})
    with pytest.raises(ConfigurationError) as info:
        secret_box_from_settings(settings)
    assert str(key_file) in str(info.value)
    assert "32" in str(info.value)


def test_key_file_that_is_not_text(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_bytes(b"\xff\xfe\x00")
    settings = load_settings(environ={"MAILPROXY_ENCRYPTION_KEY_FILE": str(key_file)})
    with pytest.raises(ConfigurationError, match="not text"):
        secret_box_from_settings(settings)


def test_no_key_warns_once_per_process(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(crypto, "_unencrypted_warning_logged", False)
    settings = Settings.from_values()
    with caplog.at_level(logging.WARNING, logger="mailproxy_core.crypto"):
        first = secret_box_from_settings(settings)
        second = secret_box_from_settings(settings)
    assert not first.enabled and not second.enabled
    warnings = [r for r in caplog.records if r.name == "mailproxy_core.crypto"]
    assert len(warnings) == 1
    assert "unencrypted" in warnings[0].getMessage()


def test_no_warning_with_a_key(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(crypto, "_unencrypted_warning_logged", False)
    with caplog.at_level(logging.WARNING, logger="mailproxy_core.crypto"):
        secret_box_from_settings(Settings.from_values(encryption_key=generate_key()))
    assert not caplog.records


# -- masking --------------------------------------------------------------------------------


def test_mask_nested_structures() -> None:
    payload = {
        "id": "t1",
        "client_auth": {"method": "basic", "user": "u", "password": "p"},
        "report_signing_secret": "sig",
        "accounts": [
            {"id": "a1", "password": "p1", "imap_password": "p2", "port": 587},
            ({"api_key": "k", "X-Api-Key": "h"},),
        ],
        "storage": {"config": {"secret_key": "sk", "access_key": "ak", "bucket": "b"}},
        "headers": {"Authorization": "Bearer x"},
        "empty": {"token": None},
    }
    masked = mask_secrets(payload)
    assert masked == {
        "id": "t1",
        "client_auth": {"method": "basic", "user": "u", "password": "***"},
        "report_signing_secret": "***",
        "accounts": [
            {"id": "a1", "password": "***", "imap_password": "***", "port": 587},
            ({"api_key": "***", "X-Api-Key": "***"},),
        ],
        "storage": {"config": {"secret_key": "***", "access_key": "***", "bucket": "b"}},
        "headers": {"Authorization": "***"},
        "empty": {"token": None},
    }
    assert payload["client_auth"]["password"] == "p"  # the input is not modified


def test_mask_with_custom_keys() -> None:
    assert mask_secrets({"pin": 1234, "password": "p"}, frozenset({"pin"})) == {
        "pin": "***",
        "password": "p",
    }


def test_mask_leaves_scalars_alone() -> None:
    assert mask_secrets("text") == "text"
    assert mask_secrets(None) is None
    assert mask_secrets([1, "a"]) == [1, "a"]


# -- tokens ---------------------------------------------------------------------------------


def test_token_hash_and_verify() -> None:
    token = new_token()
    hashed = hash_token(token)
    assert hashed.startswith("sha256$")
    assert token not in hashed
    assert verify_token(token, hashed)
    assert not verify_token(token + "x", hashed)
    assert not verify_token(new_token(), hashed)


def test_verify_rejects_empty_token_and_unknown_format() -> None:
    assert not verify_token("", hash_token(""))
    assert not verify_token("abc", "md5$900150983cd24fb0d6963f7d28e17f72")
    assert not verify_token("abc", "no-scheme")


def test_hash_is_deterministic() -> None:
    assert hash_token("abc") == hash_token("abc")


def test_new_token_is_random_and_urlsafe() -> None:
    tokens = {new_token() for _ in range(20)}
    assert len(tokens) == 20
    for token in tokens:
        assert len(token) >= 43
        assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
