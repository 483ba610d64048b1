"""The generated ``/{entity}/{method}`` routes: routing, validation, auth, scoping, errors."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import pytest
from pydantic import Field
from quart import Quart

from mailproxy_core.api.endpoint import Endpoint, public
from mailproxy_core.api.generate import build_api
from mailproxy_core.specs import EndpointSpec

ADMIN = {"X-API-Token": "admin-token"}


def tenant_headers(tenant_id: str) -> dict[str, str]:
    return {"X-API-Token": f"key-{tenant_id}"}


async def _call(
    app: Quart,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> tuple[int, Any, Any]:
    async with app.test_app() as test_app:
        client = test_app.test_client()
        response = await client.open(path, method=method, headers=headers or {}, **kwargs)
        return response.status_code, await response.get_json(), response.headers


async def test_post_route_takes_a_json_body(api_app: Quart) -> None:
    body = {"id": "acme", "name": "Acme", "rate_limits": {"per_minute": 5}}
    status, data, _ = await _call(api_app, "POST", "/tenants/add", headers=ADMIN, json=body)
    assert status == 200
    assert data == {"id": "acme", "name": "Acme", "active": True, "rate_limits": {"per_minute": 5}}


async def test_get_route_coerces_query_parameters(api_app: Quart) -> None:
    query = "tenant_id=acme&limit=5&status=sent&ids=a&ids=b&filters=%7B%22x%22%3A1%7D"
    status, data, _ = await _call(api_app, "GET", f"/messages/list?{query}", headers=ADMIN)
    assert status == 200
    assert data == {
        "tenant_id": "acme",
        "limit": 5,
        "status": "sent",
        "ids": ["a", "b"],
        "filters": {"x": 1},
    }


async def test_get_list_parameter_accepts_a_json_array(api_app: Quart) -> None:
    path = '/messages/list?tenant_id=acme&ids=["a","b"]'
    status, data, _ = await _call(api_app, "GET", path, headers=ADMIN)
    assert status == 200
    assert data["ids"] == ["a", "b"]


async def test_get_boolean_query_values(api_app: Quart) -> None:
    await _call(api_app, "POST", "/tenants/add", headers=ADMIN, json={"id": "on"})
    await _call(api_app, "POST", "/tenants/add", headers=ADMIN, json={"id": "off", "active": False})
    for flag, expected in (("yes", ["on"]), ("1", ["on"]), ("false", ["on", "off"])):
        status, data, _ = await _call(
            api_app, "GET", f"/tenants/list?active_only={flag}", headers=ADMIN
        )
        assert status == 200
        assert [tenant["id"] for tenant in data] == expected


async def test_validation_error_lists_each_bad_field(api_app: Quart) -> None:
    status, data, _ = await _call(
        api_app,
        "POST",
        "/messages/add",
        headers=ADMIN,
        json={"tenant_id": "acme", "port": "abc", "priority": 9, "password": "s3cret"},
    )
    assert status == 422
    assert data["code"] == "invalid_input"
    fields = [entry["field"] for entry in data["errors"]]
    assert sorted(fields) == ["id", "password", "port", "priority"]
    assert "port: Input should be a valid integer" in data["detail"]
    assert "id: Field required" in data["detail"]
    assert "password: unknown field" in data["detail"]
    assert "s3cret" not in str(data)


async def test_query_validation_errors(api_app: Quart) -> None:
    path = "/messages/list?tenant_id=acme&limit=ten&limit=11&filters={bad&tenantid=x"
    status, data, _ = await _call(api_app, "GET", path, headers=ADMIN)
    assert status == 422
    by_field = {entry["field"]: entry["message"] for entry in data["errors"]}
    assert by_field.keys() == {"limit", "filters", "tenantid"}
    assert by_field["limit"] == "expected one value, got 2"
    assert by_field["filters"].startswith("not valid JSON")


async def test_body_must_be_a_json_object(api_app: Quart) -> None:
    status, data, _ = await _call(api_app, "POST", "/tenants/add", headers=ADMIN, json=["acme"])
    assert status == 422
    assert data["errors"][0]["field"] == "body"
    assert "not an array" in data["detail"]


async def test_malformed_json_is_a_400(api_app: Quart) -> None:
    status, data, _ = await _call(
        api_app,
        "POST",
        "/tenants/add",
        headers={**ADMIN, "Content-Type": "text/plain"},
        data=b'{"id": ',
    )
    assert status == 400
    assert data["code"] == "bad_request"
    assert "not valid JSON" in data["detail"]


async def test_unknown_entity_and_method_are_404(api_app: Quart) -> None:
    for path in ("/nothing/list", "/tenants/nothing", "/tenants"):
        status, data, _ = await _call(api_app, "GET", path, headers=ADMIN)
        assert status == 404, path
        assert data["code"] == "not_found"
        assert data["detail"].startswith(f"unknown route GET {path}")


async def test_wrong_http_method_is_405(api_app: Quart) -> None:
    status, data, headers = await _call(api_app, "GET", "/tenants/add", headers=ADMIN)
    assert status == 405
    assert data == {
        "detail": "GET is not allowed on /tenants/add; use POST",
        "code": "method_not_allowed",
    }
    assert "POST" in headers["Allow"]


async def test_missing_or_unknown_token_is_401(api_app: Quart) -> None:
    for headers in ({}, {"X-API-Token": "nope"}, {"Authorization": "Basic abc"}):
        status, data, response_headers = await _call(
            api_app, "GET", "/tenants/list", headers=headers
        )
        assert status == 401
        assert data["code"] == "unauthorized"
        assert "X-API-Token" in data["detail"]
        assert response_headers["WWW-Authenticate"].startswith("Bearer")


async def test_backend_rejecting_credentials_is_401(api_app: Quart) -> None:
    status, data, _ = await _call(
        api_app, "GET", "/tenants/get", headers={"X-API-Token": "expired-key"}
    )
    assert (status, data) == (
        401,
        {"detail": "tenant key expired: create a new one", "code": "unauthorized"},
    )


async def test_bearer_token_is_accepted(api_app: Quart) -> None:
    headers = {"Authorization": "Bearer admin-token"}
    status, data, _ = await _call(api_app, "GET", "/tenants/list", headers=headers)
    assert (status, data) == (200, [])


async def test_tenant_on_admin_only_method_is_403(api_app: Quart) -> None:
    status, data, _ = await _call(
        api_app, "POST", "/tenants/add", headers=tenant_headers("acme"), json={"id": "x"}
    )
    assert status == 403
    assert data == {
        "detail": "/tenants/add is reserved to the instance admin token",
        "code": "forbidden",
    }


async def test_tenant_scoped_defaults_to_own_tenant(api_app: Quart) -> None:
    status, data, _ = await _call(api_app, "GET", "/messages/list", headers=tenant_headers("acme"))
    assert status == 200
    assert data["tenant_id"] == "acme"
    status, data, _ = await _call(
        api_app, "GET", "/messages/list?tenant_id=acme", headers=tenant_headers("acme")
    )
    assert (status, data["tenant_id"]) == (200, "acme")


async def test_tenant_scoped_refuses_other_tenants(api_app: Quart) -> None:
    status, data, _ = await _call(
        api_app,
        "POST",
        "/tenants/suspend_batch",
        headers=tenant_headers("acme"),
        json={"tenant_id": "globex"},
    )
    assert status == 403
    assert data["code"] == "forbidden"
    assert "'globex' is not yours" in data["detail"]


async def test_tenant_scoped_admin_must_name_the_tenant(api_app: Quart) -> None:
    status, data, _ = await _call(api_app, "GET", "/messages/list", headers=ADMIN)
    assert status == 422
    assert data["detail"] == "tenant_id: Field required"
    status, data, _ = await _call(api_app, "GET", "/messages/list?tenant_id=globex", headers=ADMIN)
    assert (status, data["tenant_id"]) == (200, "globex")


async def test_tenant_scoped_optional_tenant_id(api_app: Quart) -> None:
    assert (await _call(api_app, "GET", "/messages/count_active", headers=ADMIN))[1] == 7
    tenant = tenant_headers("acme")
    assert (await _call(api_app, "GET", "/messages/count_active", headers=tenant))[1] == 3


async def test_public_method_and_public_path_need_no_token(api_app: Quart) -> None:
    status, data, _ = await _call(api_app, "GET", "/instance/health")
    assert (status, data) == (200, {"status": "ok"})
    # admin_only, but listed in public_paths: served without credentials (principal None)
    status, data, _ = await _call(api_app, "GET", "/instance/status")
    assert (status, data) == (200, {"ok": True, "active": True})


async def test_method_added_to_existing_entity_by_second_spec(api_app: Quart) -> None:
    status, data, _ = await _call(
        api_app, "POST", "/tenants/create_api_key", headers=ADMIN, json={"tenant_id": "acme"}
    )
    assert (status, data) == (200, {"ok": True, "tenant_id": "acme", "api_key": "key-acme"})


async def test_results_are_serialised(api_app: Quart) -> None:
    status, data, _ = await _call(
        api_app, "GET", "/messages/whoami", headers=tenant_headers("acme")
    )
    assert status == 200
    assert data == {
        "principal": {"kind": "tenant", "tenant_id": "acme", "name": "acme"},
        "tags": ["a", "b"],
    }
    status, data, _ = await _call(
        api_app, "POST", "/messages/delete", headers=ADMIN, json={"message_pk": "1"}
    )
    assert (status, data) == (200, True)


async def test_mailproxy_error_from_endpoint(api_app: Quart) -> None:
    status, data, _ = await _call(api_app, "GET", "/tenants/get?tenant_id=zzz", headers=ADMIN)
    assert (status, data) == (404, {"detail": "tenant 'zzz' not found", "code": "not_found"})


async def test_unexpected_error_is_500_without_its_text(
    api_app: Quart, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="mailproxy_core.api.errors"):
        status, data, _ = await _call(api_app, "GET", "/messages/boom", headers=ADMIN)
    assert status == 500
    assert data == {"detail": "internal error", "code": "internal_error"}
    record = next(r for r in caplog.records if r.name == "mailproxy_core.api.errors")
    assert record.exc_info is not None
    assert "GET /messages/boom" in record.getMessage()


async def test_var_keyword_method_accepts_extra_fields(api_app: Quart) -> None:
    status, data, _ = await _call(
        api_app,
        "POST",
        "/messages/annotate",
        headers=ADMIN,
        json={"note": "n", "from": "a@example.com"},
    )
    assert (status, data) == (200, {"note": "n", "fields": {"from": "a@example.com"}})


async def test_parameter_shadowing_a_model_attribute(api_app: Quart) -> None:
    status, data, _ = await _call(api_app, "GET", "/messages/schema?copy=y", headers=ADMIN)
    assert (status, data) == (200, {"copy": "y"})


async def test_annotated_constraints_are_enforced() -> None:
    """``Annotated[int, Field(ge=1)]`` limits reach the request model: 422, not ignored."""

    class Paged(Endpoint):
        @public
        async def page(self, limit: PageLimit = 5) -> dict[str, int]:
            """One page."""
            return {"limit": limit}

    app = Quart("annotated")

    async def nobody(request: object) -> None:
        return None

    build_api(app, endpoints=[EndpointSpec("paged", Paged)], kernel=None, authenticate=nobody)
    async with app.test_app():
        client = app.test_client()
        assert (await (await client.get("/paged/page?limit=3")).get_json()) == {"limit": 3}
        too_big = await client.get("/paged/page?limit=11")
        assert too_big.status_code == 422
        assert "limit" in (await too_big.get_json())["detail"]


PageLimit = Annotated[int, Field(ge=1, le=10)]
