"""The client against a real instance: every route has a method, calls and errors work."""

from __future__ import annotations

import inspect
import socket

import httpx
import pytest

from mailproxy_client import AsyncMailProxyClient, MailProxyClient, MailProxyError
from mailproxy_client._api import ENTITIES, AsyncRootApi, RootApi
from mailproxy_client._generate import operations_of

from .conftest import TOKEN


def _method(root: type, entity: str | None, name: str):
    owner = root
    if entity is not None:
        owner = inspect.get_annotations(root, eval_str=True)[entity]
    return getattr(owner, name, None)


def test_every_route_of_the_service_has_a_method(service: str) -> None:
    spec = httpx.get(f"{service}/openapi.json", timeout=30).json()
    operations = operations_of(spec)
    assert len(operations) > 30
    routes = {path for path, methods in spec["paths"].items() if {"get", "post"} & set(methods)}
    assert {op.path for op in operations} == routes
    missing = []
    for op in operations:
        for root in (RootApi, AsyncRootApi):
            method = _method(root, op.entity, op.name)
            if method is None:
                missing.append(f"{root.__name__}: {op.http_method} {op.path}")
                continue
            params = inspect.signature(method).parameters
            for param in op.params:
                python_name = f"{param.name}_" if param.name in ("from", "class") else param.name
                assert python_name in params, (op.path, param.name)
                has_default = params[python_name].default is not inspect.Parameter.empty
                assert has_default == (not param.required), (op.path, param.name)
    assert not missing, "routes without a client method (run `make client`):\n" + "\n".join(missing)
    assert set(ENTITIES) == {op.entity for op in operations if op.entity}


def test_calls_and_errors(service: str) -> None:
    with MailProxyClient(service, TOKEN) as client:
        assert client.status() == {"ok": True, "active": True}
        tenant = client.tenants.add("acme", name="Acme", rate_limits={"per_minute": 5})
        assert tenant["name"] == "Acme"
        assert [t["id"] for t in client.tenants.list()] == ["acme"]
        account = client.accounts.add("a1", tenant_id="acme", host="127.0.0.1", port=2525)
        assert account["id"] == "a1"
        queued = client.messages.add(
            id="m1",
            tenant_id="acme",
            account_id="a1",
            subject="hi",
            body="hello",
            to="bob@example.com",
            from_="alice@example.com",
        )
        assert queued["id"] == "m1"
        assert client.messages.get("m1", tenant_id="acme")["payload"]["subject"] == "hi"
        assert client.request("GET", "/messages/count_active") >= 0

        with pytest.raises(MailProxyError) as missing:
            client.tenants.get(tenant_id="nope")
        assert missing.value.status == 404 and missing.value.code == "not_found"
        assert "nope" in missing.value.detail

        with pytest.raises(MailProxyError) as invalid:
            client.request("POST", "/messages/add", {"id": "m2", "tenant_id": "acme", "bogus": 1})
        assert invalid.value.status == 422
        assert invalid.value.code == "message_rejected" and "account_id" in invalid.value.detail

    with MailProxyClient(service, "wrong-token") as intruder, pytest.raises(MailProxyError) as err:
        intruder.tenants.list()
    assert err.value.status == 401 and err.value.code == "unauthorized"


def test_unreachable_service_is_status_0() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"  # bound, never listening
        with MailProxyClient(url, TOKEN, timeout=2) as client, pytest.raises(MailProxyError) as err:
            client.status()
    assert (err.value.status, err.value.code) == (0, "connection_error")
    assert url in err.value.detail


async def test_async_client(service: str) -> None:
    async with AsyncMailProxyClient(service, TOKEN) as client:
        assert (await client.status())["ok"] is True
        await client.tenants.add("async-co")
        assert (await client.tenants.get(tenant_id="async-co"))["id"] == "async-co"
        with pytest.raises(MailProxyError) as err:
            await client.accounts.get("missing", tenant_id="async-co")
        assert err.value.status == 404
