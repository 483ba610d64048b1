"""The OpenAPI document says what the API answers: error codes, public routes, declared types."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mailproxy_core.app import create_app
from mailproxy_core.settings import Settings
from mailproxy_core.testing.plugin import ADMIN_TOKEN

ERROR_CODES = {"400", "404", "405", "409", "413", "422"}


@pytest.fixture
async def document(tmp_path: Path) -> dict[str, Any]:
    settings = Settings.from_values(
        db=str(tmp_path / "mailproxy.db"), api_token=ADMIN_TOKEN, test_mode=True
    )
    app = create_app(settings)
    response = await app.test_client().get("/openapi.json")
    assert response.status_code == 200
    return dict(await response.get_json())


async def test_every_generated_operation_lists_the_error_codes_it_can_answer(
    document: dict[str, Any],
) -> None:
    missing = {}
    for path, operations in document["paths"].items():
        for verb, operation in operations.items():
            if operation.get("operationId", "").startswith(("get_", "post_")):
                continue  # not generated (/health, plugin blueprints)
            absent = ERROR_CODES - set(operation["responses"])
            if absent:
                missing[f"{verb.upper()} {path}"] = sorted(absent)
    assert not missing
    secured = document["paths"]["/tenants/add"]["post"]
    assert {"401", "403"} <= set(secured["responses"]) and "security" not in secured


async def test_health_and_metrics_are_declared_public(document: dict[str, Any]) -> None:
    health = document["paths"]["/health"]["get"]
    assert health["security"] == []
    assert health["responses"]["200"]
    if "/metrics" in document["paths"]:  # the metrics plugin is installed
        assert document["paths"]["/metrics"]["get"]["security"] == []
    # the document's default requires a token everywhere else
    assert document["security"] == [{"ApiToken": []}, {"Bearer": []}]


SECRET_FIELDS = {"password", "token", "report_signing_secret", "api_key", "secret"}
"""Names that must never be documented as returned in a tenant, account or storage object."""


def _resolved(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _object_fields(document: dict[str, Any], name: str) -> dict[str, Any]:
    schema = document["components"]["schemas"][name]
    return dict(schema["properties"])


async def test_tenant_account_and_storage_objects_are_documented(
    document: dict[str, Any],
) -> None:
    operations = {
        "TenantObject": ("/tenants/add", "/tenants/get", "/tenants/list", "/tenants/update"),
        "AccountObject": ("/accounts/add", "/accounts/get", "/accounts/list"),
        "StorageObject": ("/storages/add", "/storages/get", "/storages/list"),
    }
    for name, paths in operations.items():
        for path in paths:
            (operation,) = document["paths"][path].values()
            schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
            referenced = schema.get("items", schema)
            assert referenced["$ref"] == f"#/components/schemas/{name}", (path, schema)
        fields = _object_fields(document, name)
        assert not SECRET_FIELDS & set(fields), name
        for field, spec in fields.items():
            assert spec.get("description"), f"{name}.{field} has no description"
            typed = [_resolved(document, option) for option in spec.get("anyOf", [spec])]
            assert all("type" in option for option in typed), f"{name}.{field} has no type"
    tenant = _object_fields(document, "TenantObject")
    assert {"has_credentials", "has_report_signing_secret", "client_auth"} <= set(tenant)
    client_auth = document["components"]["schemas"]["ClientAuthObject"]["properties"]
    assert set(client_auth) == {"method", "user"}
    for nested in ("RateLimits", "LargeFileConfig"):
        for field, spec in document["components"]["schemas"][nested]["properties"].items():
            assert spec.get("description"), f"{nested}.{field} has no description"
    account = _object_fields(document, "AccountObject")
    assert {"has_password", "secret_option_keys", "options"} <= set(account)
