"""Generated routes against hostile input: deep JSON and booleans where numbers are declared."""

from __future__ import annotations

from typing import Any

from quart import Quart

from mailproxy_core.api.json_limits import MAX_JSON_DEPTH, too_deep
from tests.api.conftest import ADMIN

DEEP = 100_000


async def _call(app: Quart, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    async with app.test_app() as test_app:
        client = test_app.test_client()
        response = await client.open(path, method=method, headers=ADMIN, **kwargs)
        return response.status_code, await response.get_json()


def test_depth_is_measured_outside_strings_and_at_the_limit() -> None:
    assert not too_deep("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH)
    assert too_deep("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1))
    assert not too_deep('{"a":' * MAX_JSON_DEPTH + "1" + "}" * MAX_JSON_DEPTH)
    assert too_deep('{"a":[' * 17 + "1" + "]}" * 17)  # 34 levels, mixed
    # brackets inside strings, escaped quotes and escaped backslashes do not count
    assert not too_deep('["' + "[" * 1000 + '\\"' + "{" * 1000 + '"]')
    assert not too_deep('["\\\\", ' + "[]" * 1000 + "]")
    assert too_deep('["\\\\", ' + "[" * 40 + "]" * 40 + "]")
    # many shallow siblings are fine however many there are
    assert not too_deep("[" + ",".join(["[[1]]"] * 100_000) + "]")
    # malformed text is left to the parser unless it opens too many levels first
    assert not too_deep("]]]]" + "[" * 10)
    assert too_deep("[" * DEEP)
    # UTF-16 JSON is measured on its text
    assert too_deep(("[" * 40 + "]" * 40).encode("utf-16"))


async def test_deep_query_parameter_is_a_422_naming_it(api_app: Quart) -> None:
    filters = '{"a":' * DEEP + "1" + "}" * DEEP
    status, data = await _call(api_app, "GET", "/messages/list", query_string={"filters": filters})
    assert status == 422
    assert data["errors"] == [
        {
            "field": "filters",
            "message": f"JSON nested deeper than {MAX_JSON_DEPTH} levels; no parameter of this "
            "API needs more than a few levels",
            "type": "json_too_deep",
        }
    ]


async def test_deep_body_is_a_422_before_parsing(api_app: Quart) -> None:
    body = ('{"id":"x","rate_limits":' + '{"a":' * DEEP + "1" + "}" * DEEP + "}").encode()
    status, data = await _call(api_app, "POST", "/tenants/add", data=body)
    assert status == 422
    assert data["code"] == "json_too_deep" and data["errors"][0]["field"] == "body"


async def test_a_boolean_is_not_an_integer(api_app: Quart) -> None:
    message = {"tenant_id": "acme", "id": "m1"}
    for value in (True, False):
        status, data = await _call(
            api_app, "POST", "/messages/add", json={**message, "port": value}
        )
        assert status == 422, data
        assert data["errors"][0]["field"] == "port"
        assert "not a boolean" in data["errors"][0]["message"]
    status, data = await _call(api_app, "POST", "/messages/add", json={**message, "port": 25})
    assert status == 200 and data["port"] == 25, data
    # digits in a query string are still read as a number
    status, data = await _call(
        api_app, "GET", "/messages/list", query_string={"tenant_id": "acme", "limit": "5"}
    )
    assert status == 200, data
