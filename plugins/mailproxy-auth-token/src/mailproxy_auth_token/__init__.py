"""mail-proxy plugin ``auth_token``: the instance admin token (docs/api.md)."""

from __future__ import annotations

from mailproxy_core import AuthBackendSpec, MailProxy, hookimpl

from .backend import AdminTokenBackend, ensure_admin_token

__version__ = "0.1.0"


@hookimpl
def mailproxy_register_auth_backends() -> list[AuthBackendSpec]:
    return [AuthBackendSpec("admin_token", AdminTokenBackend, order=10)]


@hookimpl
async def mailproxy_startup(mp: MailProxy) -> None:
    await ensure_admin_token(mp)
