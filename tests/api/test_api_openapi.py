"""The OpenAPI document lists every generated operation, with parameters, docs and security."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from quart import Quart

from mailproxy_core.api import MethodInfo


async def _get(app: Quart, path: str) -> tuple[int, Any]:
    async with app.test_app() as test_app:
        response = await test_app.test_client().get(path)
        if response.content_type == "application/json":
            return response.status_code, await response.get_json()
        return response.status_code, await response.get_data(as_text=True)


async def _spec(app: Quart) -> dict[str, Any]:
    status, spec = await _get(app, "/openapi.json")
    assert status == 200
    return spec


async def test_every_method_is_an_operation(api_factory: Callable[..., Any]) -> None:
    app, methods = api_factory()
    spec = await _spec(app)
    operations = {(verb.upper(), path) for path, item in spec["paths"].items() for verb in item}
    assert operations == {(info.http_method, info.path) for info in methods}
    assert ("POST", "/tenants/create_api_key") in operations


async def test_get_operation_lists_query_parameters(api_app: Quart) -> None:
    operation = (await _spec(api_app))["paths"]["/messages/get"]["get"]
    parameters = {p["name"]: p for p in operation["parameters"]}
    assert set(parameters) == {"tenant_id", "message_id"}
    assert all(p["in"] == "query" for p in parameters.values())
    assert parameters["message_id"]["required"] is True
    assert parameters["message_id"]["description"] == "the client's message id."
    # tenant keys may omit tenant_id: optional at the HTTP layer, and it says why
    assert "required" not in parameters["tenant_id"]
    assert "Tenant keys may omit it" in parameters["tenant_id"]["description"]
    assert operation["summary"] == "Get one message."
    assert operation["tags"] == ["messages"]
    assert operation["operationId"] == "get_messages_get"
    assert "requestBody" not in operation


async def test_post_operation_documents_the_body(api_app: Quart) -> None:
    operation = (await _spec(api_app))["paths"]["/tenants/add"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert set(schema["properties"]) == {"id", "name", "active", "rate_limits"}
    assert schema["required"] == ["id"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["active"]["default"] is True
    assert operation["summary"] == "Create a tenant."
    assert operation["description"] == "Registers a client application."
    assert {"200", "401", "403", "422"} <= set(operation["responses"])


async def test_security_schemes_and_public_operations(api_app: Quart) -> None:
    spec = await _spec(api_app)
    schemes = spec["components"]["securitySchemes"]
    assert schemes["ApiToken"] == {"type": "apiKey", "name": "X-API-Token", "in": "header"}
    assert schemes["Bearer"] == {"type": "http", "scheme": "bearer"}
    assert spec["security"] == [{"ApiToken": []}, {"Bearer": []}]
    assert spec["paths"]["/instance/health"]["get"]["security"] == []
    assert spec["paths"]["/instance/status"]["get"]["security"] == []  # via public_paths
    assert "security" not in spec["paths"]["/tenants/list"]["get"]


async def test_response_schema_from_return_annotation(api_app: Quart) -> None:
    spec = await _spec(api_app)
    response = spec["paths"]["/messages/whoami"]["get"]["responses"]["200"]
    schema = response["content"]["application/json"]["schema"]
    assert schema["$ref"] == "#/components/schemas/Receipt"
    assert "Principal" in spec["components"]["schemas"]


async def test_docs_page_answers_without_token(api_app: Quart) -> None:
    status, body = await _get(api_app, "/docs")
    assert status == 200
    assert "swagger-ui" in body


def test_method_info_describes_the_signature(api_factory: Callable[..., Any]) -> None:
    _, methods = api_factory()
    info: MethodInfo = next(m for m in methods if m.path == "/tenants/add")
    assert (info.entity, info.name, info.http_method, info.scope) == (
        "tenants",
        "add",
        "POST",
        "admin_only",
    )
    assert [(p.name, p.required, p.default) for p in info.params] == [
        ("id", True, None),
        ("name", False, None),
        ("active", False, True),
        ("rate_limits", False, None),
    ]
    assert info.params[0].description == "the tenant id chosen by the client."
    assert info.owner.endswith("Tenants")
