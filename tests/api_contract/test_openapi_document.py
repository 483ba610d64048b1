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
