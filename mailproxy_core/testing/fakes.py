"""Fakes for tests of the kernel and of plugins: only for what has no real peer in a test."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..api.auth import extract_token
from ..models import Account, Envelope, Principal, SendResult
from ..plugins.markers import hookimpl
from ..specs import AuthBackendSpec, TransportSpec

TENANT_TOKEN_PREFIX = "tenant-token:"


class TenantTokenBackend:
    """Test-only auth: the token ``tenant-token:<tenant id>`` is that tenant's principal.

    Stands in for the EE API-key plugin so that scoping can be tested in the kernel.
    """

    def __init__(self, mp: object = None) -> None:
        pass

    async def authenticate(self, request: Any) -> Principal | None:
        token = extract_token(request)
        if token and token.startswith(TENANT_TOKEN_PREFIX):
            return Principal.tenant(token[len(TENANT_TOKEN_PREFIX) :])
        return None


class StaticAdminBackend:
    """Test-only auth: one fixed token is the admin (stands in for the ``auth_token`` plugin)."""

    def __init__(self, token: str) -> None:
        self.token = token

    async def authenticate(self, request: Any) -> Principal | None:
        return Principal.admin() if extract_token(request) == self.token else None


class StaticAdminPlugin:
    """Registers ``StaticAdminBackend``; used where the ``auth_token`` plugin is not installed."""

    def __init__(self, token: str) -> None:
        self.token = token

    @hookimpl
    def mailproxy_register_auth_backends(self) -> list[AuthBackendSpec]:
        return [AuthBackendSpec("test_admin_token", lambda mp: StaticAdminBackend(self.token), 20)]


class TenantTokenPlugin:
    """Registers ``TenantTokenBackend`` (use with the ``register_plugin`` fixture)."""

    @hookimpl
    def mailproxy_register_auth_backends(self) -> list[AuthBackendSpec]:
        return [AuthBackendSpec("test_tenant_token", TenantTokenBackend, order=50)]


@dataclass
class RecordingTransport:
    """A transport that keeps what it was given; ``fail_with`` makes every send raise."""

    sent: list[tuple[Account, Envelope, bytes]] = field(default_factory=list)
    fail_with: BaseException | None = None

    async def send(self, account: Account, envelope: Envelope, mime_bytes: bytes) -> SendResult:
        if self.fail_with is not None:
            raise self.fail_with
        self.sent.append((account, envelope, mime_bytes))
        return SendResult(accepted=envelope.recipients, response="250 recorded")


class RecordingTransportPlugin:
    """Registers one shared ``RecordingTransport`` under ``name`` (default ``recording``)."""

    def __init__(self, name: str = "recording") -> None:
        self.name = name
        self.transport = RecordingTransport()

    @hookimpl
    def mailproxy_register_transports(self) -> list[TransportSpec]:
        return [TransportSpec(self.name, lambda mp: self.transport)]
