"""``storages/add`` with cloud protocols: offline validation, missing libraries, no secrets out."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import pytest

pytestmark = pytest.mark.requires_plugins("ee_cloud_storage", "auth_token")


async def add(client: Any, protocol: str, config: Any, name: str = "DOCS") -> Any:
    return await client.post(
        "/storages/add", tenant_id="acme", name=name, protocol=protocol, config=config
    )


@pytest.fixture
async def tenant(mp_client: Any) -> Any:
    added = await mp_client.post("/tenants/add", id="acme")
    assert added.status == 200, added.json
    return mp_client


def config_error(response: Any) -> str:
    assert response.status == 422, response.json
    [error] = response.json["errors"]
    assert error["field"] == "config"
    message: str = error["message"]
    assert message in response.json["detail"]
    return message


@pytest.mark.parametrize(
    ("protocol", "config", "expected"),
    [
        ("s3", {}, "s3 storage config: missing 'bucket'"),
        ("s3", {"bucket": "docs", "bukcet": "x"}, "unknown key 'bukcet' (accepted: bucket, prefix"),
        (
            "s3",
            {"bucket": "docs", "access_key_id": "AKID"},
            "give both 'access_key_id' and 'secret_access_key', or neither",
        ),
        ("s3", {"bucket": "docs", "endpoint_url": "ftp://x"}, "'endpoint_url' must be an http"),
        ("s3", {"bucket": "Not_A_Bucket!"}, "'bucket' 'Not_A_Bucket!' is not a valid name"),
        ("s3", {"bucket": "docs", "prefix": "a/../b"}, "'prefix' must not contain '..'"),
        ("s3", {"bucket": 7}, "'bucket' must be a non-empty string"),
        ("gcs", {"prefix": "x"}, "gcs storage config: missing 'bucket'"),
        ("gcs", {"bucket": "docs", "credentials_json": "{not json"}, "is not valid JSON"),
        (
            "gcs",
            {"bucket": "docs", "credentials_json": json.dumps({"type": "service_account"})},
            "'credentials_json' lacks 'client_email'",
        ),
        ("azure", {"container": "docs"}, "azure storage config: missing 'account_name'"),
        (
            "azure",
            {"container": "docs", "account_name": "acct", "account_key": "k", "sas_token": "s"},
            "give only one of account_key, sas_token",
        ),
        (
            "azure",
            {"container": "docs", "account_name": "acct", "endpoint_url": "http://127.0.0.1:1"},
            "an http:// 'endpoint_url' needs 'account_key', 'sas_token' or 'connection_string'",
        ),
        (
            "azure",
            {"container": "docs", "account_name": "a", "connection_string": "AccountName=b;"},
            "'connection_string' is for account 'b', not 'a'",
        ),
    ],
)
async def test_bad_configs_are_refused_naming_the_key(
    tenant: Any, protocol: str, config: dict[str, Any], expected: str
) -> None:
    message = config_error(await add(tenant, protocol, config))
    assert expected in message
    assert (await tenant.get("/storages/list", tenant_id="acme")).json == []


async def test_several_problems_are_named_together(tenant: Any) -> None:
    message = config_error(await add(tenant, "azure", {"bucket": "x", "prefix": "p"}))
    assert "missing 'container'" in message
    assert "missing 'account_name'" in message
    assert "unknown key 'bucket'" in message


async def test_validation_needs_no_network(tenant: Any, mp_kernel: Any) -> None:
    # Nothing listens at these endpoints and the default credential chain is not consulted:
    # adding succeeds because nothing is contacted until a file is read or written.
    for protocol, config in (
        ("s3", {"bucket": "docs", "endpoint_url": "http://127.0.0.1:9"}),
        ("gcs", {"bucket": "docs", "endpoint_url": "http://127.0.0.1:9"}),
        ("azure", {"container": "docs", "account_name": "acct"}),
    ):
        response = await add(tenant, protocol, config, name=f"M{protocol}")
        assert response.status == 200, response.json
    from mailproxy_ee_cloud_storage.state import state_of

    assert len(state_of(mp_kernel).pool) == 0


async def test_a_missing_library_is_refused_naming_the_package(
    tenant: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "adlfs", None)  # as if adlfs were not installed
    message = config_error(await add(tenant, "azure", {"container": "c", "account_name": "a"}))
    assert message == (
        "the azure storage backend needs the adlfs package, which is not installed: "
        "pip install 'mailproxy-ee-cloud-storage[azure]'"
    )


@pytest.mark.parametrize(
    ("protocol", "config", "secrets"),
    [
        (
            "s3",
            {"bucket": "docs", "access_key_id": "AKIDVISIBLE", "secret_access_key": "S3-SECRET-1"},
            {"secret_access_key": "S3-SECRET-1"},
        ),
        (
            "azure",
            {"container": "docs", "account_name": "acct", "account_key": "QVpVUkUtS0VZ"},
            {"account_key": "QVpVUkUtS0VZ"},
        ),
        (
            "azure",
            {"container": "docs", "account_name": "acct", "sas_token": "sv=1&sig=SAS-SIG"},
            {"sas_token": "sv=1&sig=SAS-SIG"},
        ),
        (
            "azure",
            {
                "container": "docs",
                "account_name": "acct",
                "connection_string": "AccountName=acct;AccountKey=CONN-KEY",
            },
            {"connection_string": "AccountName=acct;AccountKey=CONN-KEY"},
        ),
    ],
)
async def test_credentials_are_never_returned_nor_logged(
    tenant: Any,
    caplog: pytest.LogCaptureFixture,
    protocol: str,
    config: dict[str, Any],
    secrets: dict[str, str],
) -> None:
    caplog.set_level(logging.DEBUG)
    added = await add(tenant, protocol, config)
    assert added.status == 200, added.json
    got = await tenant.get("/storages/get", tenant_id="acme", name="DOCS")
    listed = await tenant.get("/storages/list", tenant_id="acme")
    log = await tenant.get("/command_log/list", tenant_id="acme")
    for response in (added, got, listed, log):
        assert response.status == 200, response.json
        text = json.dumps(response.json)
        for value in secrets.values():
            assert value not in text
    assert sorted(added.json["secret_config_keys"]) == sorted(secrets)
    assert got.json["config"] == {k: v for k, v in config.items() if k not in secrets}
    for value in secrets.values():
        assert value not in caplog.text


async def test_gcs_credentials_json_is_never_returned(
    tenant: Any, gcs_service_account: dict[str, str]
) -> None:
    config = {"bucket": "docs", "credentials_json": json.dumps(gcs_service_account)}
    added = await add(tenant, "gcs", config)
    assert added.status == 200, added.json
    got = await tenant.get("/storages/get", tenant_id="acme", name="DOCS")
    log = await tenant.get("/command_log/list", tenant_id="acme")
    assert "PRIVATE KEY" not in json.dumps(got.json)
    assert "PRIVATE KEY" not in json.dumps(log.json)


async def test_gcs_credentials_given_as_an_object_hide_the_private_key(
    tenant: Any, gcs_service_account: dict[str, str]
) -> None:
    added = await add(tenant, "gcs", {"bucket": "docs", "credentials_json": gcs_service_account})
    assert added.status == 200, added.json
    got = await tenant.get("/storages/get", tenant_id="acme", name="DOCS")
    log = await tenant.get("/command_log/list", tenant_id="acme")
    assert "PRIVATE KEY" not in json.dumps(got.json)
    assert "PRIVATE KEY" not in json.dumps(log.json)
    assert "credentials_json" in got.json["secret_config_keys"]


class TestMountsWithoutDefaultCredentials:
    @pytest.fixture
    def cloud_settings(self) -> dict[str, Any]:
        return {"timeout": 5.0, "retries": 1, "mount_default_credentials": False}

    async def test_mounts_must_carry_credentials(self, tenant: Any) -> None:
        message = config_error(await add(tenant, "s3", {"bucket": "docs"}))
        assert "credentials are required" in message
        config = {"bucket": "docs", "access_key_id": "A", "secret_access_key": "B"}
        assert (await add(tenant, "s3", config)).status == 200


def test_settings_come_from_the_environment_nested_and_stay_secret() -> None:
    from mailproxy_core.settings import load_settings
    from mailproxy_ee_cloud_storage import CloudStorageSettings

    settings = load_settings(
        environ={
            "MAILPROXY_EE_CLOUD_STORAGE__S3__ENDPOINT_URL": "http://127.0.0.1:9000",
            "MAILPROXY_EE_CLOUD_STORAGE__S3__SECRET_ACCESS_KEY": "ENV-SECRET",
            "MAILPROXY_EE_CLOUD_STORAGE__SWEEP_INTERVAL": "60",
        }
    )
    section = settings.plugin_settings("ee_cloud_storage", CloudStorageSettings)
    assert section.s3.endpoint_url == "http://127.0.0.1:9000"
    assert section.s3.secret_access_key is not None
    assert section.s3.secret_access_key.get_secret_value() == "ENV-SECRET"
    assert section.sweep_interval == 60
    assert "ENV-SECRET" not in json.dumps(settings.redacted())
    assert "ENV-SECRET" not in repr(section)
