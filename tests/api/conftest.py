"""A tiny API built from sample endpoint classes, a fake kernel and a two-backend auth chain.

Tokens: ``admin-token`` → the admin; ``key-<tenant>`` → that tenant; ``expired-key`` → the tenant
backend rejects it (401). Anything else is unknown (no principal).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import pytest
from quart import Quart, Request

from mailproxy_core.api import (
    POST,
    Endpoint,
    MethodInfo,
    admin_only,
    any_principal,
    public,
    tenant_scoped,
)
from mailproxy_core.api.auth import AuthChain, extract_token
from mailproxy_core.api.generate import build_api
from mailproxy_core.errors import AuthError, NotFound
from mailproxy_core.models import Principal
from mailproxy_core.specs import EndpointSpec
from mailproxy_core.testing.live import serve_in_thread

ADMIN = {"X-API-Token": "admin-token"}


def tenant_headers(tenant_id: str) -> dict[str, str]:
    """Headers authenticating as ``tenant_id``."""
    return {"X-API-Token": f"key-{tenant_id}"}


@dataclass
class FakeKernel:
    """Stands in for ``MailProxy``: the endpoints keep their state here."""

    tenants: dict[str, dict[str, Any]] = field(default_factory=dict)
    suspended: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Receipt:
    """A dataclass result, to check serialisation of nested dataclasses and tuples."""

    principal: Principal
    tags: tuple[str, ...] = ("a", "b")


class SampleEndpoint(Endpoint):
    """Endpoints of the sample API, whose kernel is a ``FakeKernel``."""

    @property
    def store(self) -> FakeKernel:
        """The fake kernel (a property: neither a route nor a CLI command)."""
        return cast(FakeKernel, self.mp)


class Tenants(SampleEndpoint):
    """Sample ``tenants`` entity."""

    @POST
    @admin_only
    async def add(
        self,
        id: str,
        name: str | None = None,
        active: bool = True,
        rate_limits: dict[str, int] | None = None,
    ) -> dict[str, Any]:
        """Create a tenant.

        Registers a client application.

        Args:
            id: the tenant id chosen by the client.
            name: a display name.
            active: whether the tenant may send.
            rate_limits: limits as {"per_minute": N, ...}.
        """
        tenant = {"id": id, "name": name, "active": active, "rate_limits": rate_limits}
        self.store.tenants[id] = tenant
        return tenant

    @admin_only
    async def list(self, active_only: bool = False) -> list[dict[str, Any]]:
        """List tenants."""
        tenants = list(self.store.tenants.values())
        return [t for t in tenants if t["active"] or not active_only]

    @tenant_scoped
    async def get(self, tenant_id: str) -> dict[str, Any]:
        """Get one tenant."""
        try:
            return dict(self.store.tenants[tenant_id])
        except KeyError:
            raise NotFound(f"tenant {tenant_id!r} not found") from None

    @POST
    @tenant_scoped
    async def suspend_batch(self, tenant_id: str, batch_code: str | None = None) -> dict[str, Any]:
        """Suspend a batch (all when no batch code)."""
        batches = self.store.suspended.setdefault(tenant_id, [])
        batches.append(batch_code or "*")
        return {"ok": True, "suspended_batches": batches}


class TenantKeys(Endpoint):
    """A second spec adding a method to ``tenants`` (like the EE apikeys plugin)."""

    @POST
    @admin_only
    async def create_api_key(self, tenant_id: str, expires_at: int | None = None) -> dict[str, Any]:
        """Create the tenant's API key."""
        return {"ok": True, "tenant_id": tenant_id, "api_key": f"key-{tenant_id}"}


class Messages(Endpoint):
    """Sample ``messages`` entity; echoes what it received."""

    @tenant_scoped
    async def list(
        self,
        tenant_id: str,
        limit: int = 1000,
        status: Literal["pending", "sent"] | None = None,
        ids: list[str] | None = None,
        filters: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """List messages."""
        return {
            "tenant_id": tenant_id,
            "limit": limit,
            "status": status,
            "ids": ids,
            "filters": filters,
        }

    @tenant_scoped
    async def get(self, tenant_id: str, message_id: str) -> dict[str, Any]:
        """Get one message.

        Args:
            tenant_id: the owning tenant.
            message_id: the client's message id.
        """
        return {"tenant_id": tenant_id, "id": message_id}

    @POST
    @tenant_scoped
    async def add(
        self,
        tenant_id: str,
        id: str,
        port: int,
        priority: Literal[0, 1, 2, 3] = 2,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Queue a message."""
        return {"tenant_id": tenant_id, "id": id, "port": port, "priority": priority}

    @tenant_scoped
    async def count_active(self, tenant_id: str | None = None) -> int:
        """Count active messages (all tenants for the admin)."""
        return 7 if tenant_id is None else 3

    @POST
    @admin_only
    async def delete(self, message_pk: int) -> bool:
        """Delete one message."""
        return message_pk == 1

    @any_principal
    async def whoami(self) -> Receipt:
        """Describe the caller."""
        return Receipt(principal=self.require_principal())

    @admin_only
    async def boom(self) -> None:
        """Fail with a secret in the exception text."""
        raise RuntimeError("smtp password=hunter2 rejected")

    @POST
    @any_principal
    async def annotate(self, note: str, **fields: Any) -> dict[str, Any]:
        """Accept any extra fields."""
        return {"note": note, "fields": fields}

    @any_principal
    async def schema(self, copy: str = "x") -> dict[str, str]:
        """A parameter whose name shadows a pydantic BaseModel attribute."""
        return {"copy": copy}


class Instance(Endpoint):
    """Sample ``instance`` entity."""

    @public
    async def health(self) -> dict[str, str]:
        """Health check."""
        return {"status": "ok"}

    @admin_only
    async def status(self) -> dict[str, Any]:
        """Status, made public through public_paths in the tests."""
        return {"ok": True, "active": self.principal is None}


SPECS: Sequence[EndpointSpec] = (
    EndpointSpec("tenants", Tenants),
    EndpointSpec("messages", Messages),
    EndpointSpec("instance", Instance),
    EndpointSpec("tenants", TenantKeys),
)


class AdminTokenBackend:
    """Recognises the admin token only."""

    def __init__(self) -> None:
        self.calls = 0

    async def authenticate(self, request: Request) -> Principal | None:
        self.calls += 1
        return Principal.admin() if extract_token(request) == "admin-token" else None


class TenantKeyBackend:
    """Recognises ``key-<tenant>``; rejects ``expired-key``."""

    def __init__(self) -> None:
        self.calls = 0

    async def authenticate(self, request: Request) -> Principal | None:
        self.calls += 1
        token = extract_token(request)
        if token == "expired-key":
            raise AuthError("tenant key expired: create a new one")
        if token and token.startswith("key-"):
            return Principal.tenant(token.removeprefix("key-"))
        return None


def make_app(
    specs: Sequence[EndpointSpec] = SPECS, kernel: FakeKernel | None = None
) -> tuple[Quart, list[MethodInfo]]:
    """A Quart app serving ``specs``; ``/instance/status`` is a public path."""
    app = Quart("mailproxy_api_tests")
    chain = AuthChain([("admin", AdminTokenBackend()), ("tenant_key", TenantKeyBackend())])
    methods = build_api(
        app,
        endpoints=specs,
        kernel=kernel or FakeKernel(),
        authenticate=chain.authenticate,
        public_paths=["/instance/status"],
    )
    return app, methods


@pytest.fixture(scope="session")
def api_specs() -> Sequence[EndpointSpec]:
    """The sample endpoint specs (``tenants`` is split across two specs)."""
    return SPECS


@pytest.fixture
def api_factory() -> Callable[..., tuple[Quart, list[MethodInfo]]]:
    """``make_app`` itself, for tests that need the generated ``MethodInfo`` list too."""
    return make_app


@pytest.fixture
def api_app() -> Quart:
    """The sample app (a fresh kernel per test)."""
    return make_app()[0]


@pytest.fixture(scope="module")
def live_api_url() -> Iterator[str]:
    """The sample app served by hypercorn on 127.0.0.1 in a background thread; yields its URL."""
    app, _ = make_app()
    with serve_in_thread(app, health_path="/instance/health") as url:
        yield url
