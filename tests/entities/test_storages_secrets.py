"""Secret-named values inside account options and storage configs (``entities/secrets.py``)."""

from __future__ import annotations

from mailproxy_core.crypto import ENCRYPTED_PREFIX, SecretBox, decode_key, generate_key
from mailproxy_core.records.secrets import (
    is_config_secret,
    redact,
    seal,
    secret_value_errors,
    unseal,
)

CONFIG = {
    "bucket": "b",
    "aws_access_key_id": "AKIAEXAMPLE",
    "aws_secret_access_key": "s3-secret",
    "account_key": "azure-key",
    "Connection-String": "DefaultEndpointsProtocol=https;AccountKey=k",
    "servers": [{"host": "h", "password": "p1"}, {"host": "h2", "password": None}],
    "auth": {"token": "t", "scheme": "bearer"},
    "port": 22,
}


def test_secret_names() -> None:
    secret = ["password", "api_key", "aws_secret_access_key", "account_key", "sas_token"]
    public = ["bucket", "aws_access_key_id", "region", "base_path", "host", 7]
    assert all(is_config_secret(name) for name in secret)
    assert not any(is_config_secret(name) for name in public)
    assert is_config_secret("Connection-String")


def test_seal_and_unseal_round_trip_every_secret_at_any_depth() -> None:
    box = SecretBox(decode_key(generate_key()))
    sealed = seal(box, CONFIG)
    assert sealed["bucket"] == "b" and sealed["aws_access_key_id"] == "AKIAEXAMPLE"
    assert sealed["port"] == 22 and sealed["auth"]["scheme"] == "bearer"
    encrypted = [
        sealed["aws_secret_access_key"],
        sealed["account_key"],
        sealed["Connection-String"],
        sealed["servers"][0]["password"],
        sealed["auth"]["token"],
    ]
    assert all(value.startswith(ENCRYPTED_PREFIX) for value in encrypted)
    assert sealed["servers"][1]["password"] is None
    assert unseal(box, sealed) == CONFIG
    assert CONFIG["auth"] == {"token": "t", "scheme": "bearer"}  # the input is not modified


def test_without_a_key_values_pass_through() -> None:
    box = SecretBox(None)
    assert seal(box, CONFIG) == CONFIG and unseal(box, CONFIG) == CONFIG


def test_redact_keeps_public_values_and_lists_the_secret_paths() -> None:
    public, removed = redact(CONFIG)
    assert public == {
        "bucket": "b",
        "aws_access_key_id": "AKIAEXAMPLE",
        "servers": [{"host": "h"}, {"host": "h2", "password": None}],
        "auth": {"scheme": "bearer"},
        "port": 22,
    }
    assert removed == [
        "Connection-String",
        "account_key",
        "auth.token",
        "aws_secret_access_key",
        "servers.0.password",
    ]
    assert redact({}) == ({}, [])


def test_secrets_must_be_strings() -> None:
    errors = secret_value_errors(
        {"api_key": 1, "nested": {"password": {"a": 1}}, "token": None, "list": [{"secret": []}]},
        "options",
    )
    assert [entry["field"] for entry in errors] == [
        "options.api_key",
        "options.nested.password",
        "options.list.0.secret",
    ]
    assert secret_value_errors({"api_key": "k", "port": 1}, "options") == []
