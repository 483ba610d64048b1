"""The authentication chain and token extraction."""

from __future__ import annotations

from typing import Any

import pytest
from quart import Quart, Request, request

from mailproxy_core.api.auth import AuthChain, extract_token
from mailproxy_core.errors import AuthError, Forbidden
from mailproxy_core.models import Principal
from mailproxy_core.specs import AuthBackendSpec


class Recorder:
    """A backend answering a fixed result and recording that it was asked."""

    def __init__(self, name: str, answer: Principal | Exception | None, asked: list[str]) -> None:
        self.name = name
        self.answer = answer
        self.asked = asked

    async def authenticate(self, request: Request) -> Principal | None:
        self.asked.append(self.name)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


async def _in_request(headers: dict[str, str], check: Any) -> Any:
    app = Quart(__name__)
    async with app.test_request_context("/tenants/list", headers=headers):
        return await check(request)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X-API-Token": "abc"}, "abc"),
        ({"X-API-Token": "  abc  "}, "abc"),
        ({"Authorization": "Bearer xyz"}, "xyz"),
        ({"Authorization": "bearer   xyz "}, "xyz"),
        ({"X-API-Token": "abc", "Authorization": "Bearer xyz"}, "abc"),
        ({"X-API-Token": "", "Authorization": "Bearer xyz"}, "xyz"),
        ({"Authorization": "Basic dXNlcjpwdw=="}, None),
        ({"Authorization": "Bearer "}, None),
        ({}, None),
    ],
)
async def test_extract_token(headers: dict[str, str], expected: str | None) -> None:
    async def check(req: Request) -> str | None:
        return extract_token(req)

    assert await _in_request(headers, check) == expected


async def test_first_non_none_principal_wins() -> None:
    asked: list[str] = []
    chain = AuthChain(
        [
            ("first", Recorder("first", None, asked)),
            ("second", Recorder("second", Principal.tenant("acme"), asked)),
            ("third", Recorder("third", Principal.admin(), asked)),
        ]
    )
    principal = await _in_request({}, chain.authenticate)
    assert principal == Principal.tenant("acme")
    assert asked == ["first", "second"]
    assert chain.names == ("first", "second", "third")


async def test_nobody_recognises_the_request() -> None:
    asked: list[str] = []
    chain = AuthChain([("a", Recorder("a", None, asked)), ("b", Recorder("b", None, asked))])
    assert await _in_request({}, chain.authenticate) is None
    assert asked == ["a", "b"]


@pytest.mark.parametrize("error", [AuthError("expired key"), Forbidden("key revoked")])
async def test_backend_error_stops_the_chain(error: AuthError) -> None:
    asked: list[str] = []
    chain = AuthChain(
        [("a", Recorder("a", error, asked)), ("b", Recorder("b", Principal.admin(), asked))]
    )
    with pytest.raises(type(error)):
        await _in_request({}, chain.authenticate)
    assert asked == ["a"]


def test_from_specs_orders_by_order_then_registration() -> None:
    asked: list[str] = []
    kernels: list[object] = []
    kernel = object()

    def factory(name: str) -> Any:
        def build(mp: object) -> Recorder:
            kernels.append(mp)
            return Recorder(name, None, asked)

        return build

    chain = AuthChain.from_specs(
        [
            AuthBackendSpec("apikeys", factory("apikeys"), order=50),
            AuthBackendSpec("late", factory("late")),
            AuthBackendSpec("admin_token", factory("admin_token"), order=10),
            AuthBackendSpec("also_late", factory("also_late")),
        ],
        kernel,
    )
    assert chain.names == ("admin_token", "apikeys", "late", "also_late")
    assert kernels == [kernel] * 4
