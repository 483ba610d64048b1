"""The web dashboard's API keys page (``mailproxy-dashboard``): list, create, revoke.

Imported only by the ``mailproxy_dashboard_pages`` hook implementation, i.e. only where the
dashboard is installed. Every read and write goes through ``api_keys/list|add|revoke``
(``ctx.call``), so a tenant key manages only its own tenant's keys and needs the ``manage``
scope to create or revoke, exactly as with the REST API. A new key is shown once, in the
answer to the form that created it; only its hash is stored.
"""

from __future__ import annotations

from typing import Any

from mailproxy_dashboard import DashboardPage, PageContext

from .keys import ALL_SCOPES


async def render_keys(ctx: PageContext) -> str:
    """A tenant's API keys; the form that creates one shows it once."""
    tenant_id, tenants = await ctx.tenant_choice()
    created: dict[str, Any] | None = None
    note = error = ""
    if ctx.method == "POST" and tenant_id is not None:
        name = ctx.form.get("name", "").strip()

        async def act() -> str:
            nonlocal created
            if ctx.form.get("action") == "add":
                scopes = [str(s) for s in ALL_SCOPES if ctx.form.get(f"scope_{s}")]
                created = await ctx.call(
                    "api_keys", "add", tenant_id=tenant_id, name=name, scopes=scopes
                )
            elif ctx.form.get("action") == "revoke":
                await ctx.call("api_keys", "revoke", tenant_id=tenant_id, name=name)
                return f"The key {name} is revoked: it is refused from now on."
            return ""

        note, error = await ctx.attempt(act)
    rows: list[dict[str, Any]] = []
    if tenant_id is not None:
        rows = await ctx.call("api_keys", "list", tenant_id=tenant_id)
    return await ctx.render_package(
        __package__,
        "api_keys.html",
        tenant_id=tenant_id,
        tenants=tenants,
        rows=rows,
        created=created,
        note=note,
        error=error,
        scopes=[str(s) for s in ALL_SCOPES],
        can_add=await ctx.permits("api_keys", "add"),
        can_revoke=await ctx.permits("api_keys", "revoke"),
    )


def pages() -> list[DashboardPage]:
    """The plugin's dashboard page."""
    return [
        DashboardPage(
            "api-keys",
            "API keys",
            render_keys,
            methods=("GET", "POST"),
            requires=("api_keys", "list"),
        )
    ]
