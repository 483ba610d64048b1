"""JSON error handlers also cover raw routes (plugins' blueprints)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel
from quart import Quart, abort
from quart_schema import QuartSchema, validate_request

from mailproxy_core.api.errors import install_error_handlers
from mailproxy_core.errors import Conflict, PluginError


class Mount(BaseModel):
    """A storage mount, as a raw blueprint might validate it."""

    name: str
    port: int


def _app() -> Quart:
    app = Quart(__name__)
    QuartSchema(app)
    install_error_handlers(app)
    install_error_handlers(app)  # idempotent

    @app.post("/raw/mount")
    @validate_request(Mount)
    async def mount(data: Mount) -> dict[str, Any]:
        return {"name": data.name}

    @app.get("/raw/model")
    async def model() -> dict[str, Any]:
        Mount.model_validate({"name": 1, "port": "x", "password": "hunter2"})
        return {}

    @app.get("/raw/abort")
    async def aborted() -> dict[str, Any]:
        abort(400)

    @app.get("/raw/conflict")
    async def conflict() -> dict[str, Any]:
        raise Conflict("batch 'b1' cannot be activated while all batches are suspended")

    @app.get("/raw/plugin")
    async def plugin() -> dict[str, Any]:
        raise PluginError("plugin 'bounce' failed to start: see the log")

    return app


async def _get_json(method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    app = _app()
    async with app.test_app() as test_app:
        response = await test_app.test_client().open(path, method=method, **kwargs)
        return response.status_code, await response.get_json()


async def test_quart_schema_validation_is_422() -> None:
    status, body = await _get_json("POST", "/raw/mount", json={"name": "m", "port": "x"})
    assert status == 422
    assert body["code"] == "invalid_input"
    assert (
        body["detail"]
        == "port: Input should be a valid integer, unable to parse string as an integer"
    )


async def test_pydantic_validation_error_is_422_without_values() -> None:
    status, body = await _get_json("GET", "/raw/model")
    assert status == 422
    assert [e["field"] for e in body["errors"]] == ["name", "port"]
    assert "hunter2" not in str(body)


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/raw/abort", 400, "bad_request"),
        ("/raw/conflict", 409, "conflict"),
        ("/raw/plugin", 500, "plugin_error"),
    ],
)
async def test_error_bodies_have_detail_and_code(path: str, status: int, code: str) -> None:
    got_status, body = await _get_json("GET", path)
    assert (got_status, body["code"]) == (status, code)
    assert set(body) == {"detail", "code"}
    assert body["detail"]
