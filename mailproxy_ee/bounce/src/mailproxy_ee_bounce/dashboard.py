"""Pages of the web dashboard (``mailproxy-dashboard``): suppressions and the bounce mailbox.

Imported only by the ``mailproxy_dashboard_pages`` hook implementation, i.e. only where the
dashboard is installed. Every read and write goes through this plugin's own API endpoint
methods (``ctx.call``), so tenant scoping, admin-only routes and API-key scopes are those of
the REST API.
"""

from __future__ import annotations

from typing import Any

from mailproxy_dashboard import DashboardPage, PageContext

from .handler import HANDLER_NAME


async def render_suppressions(ctx: PageContext) -> str:
    """The suppression list of one tenant, with add and remove (``suppressions/*``)."""
    tenant_id, tenants = await ctx.tenant_choice()
    note = error = ""
    if ctx.method == "POST" and tenant_id is not None:
        address = ctx.form.get("address", "").strip()

        async def act() -> str:
            if ctx.form.get("action") == "add":
                reason = ctx.form.get("reason", "").strip() or "manual"
                entry = await ctx.call(
                    "suppressions", "add", tenant_id=tenant_id, address=address, reason=reason
                )
                return f"{entry['address']} is suppressed: nothing more is sent to it."
            if ctx.form.get("action") == "delete":
                result = await ctx.call(
                    "suppressions", "delete", tenant_id=tenant_id, address=address
                )
                if result.get("removed"):
                    return f"{address} removed: messages are sent to it again."
                return f"{address} was not on the list."
            return ""

        note, error = await ctx.attempt(act)
    rows: list[dict[str, Any]] = []
    if tenant_id is not None:
        rows = await ctx.call("suppressions", "list", tenant_id=tenant_id)
    return await ctx.render_package(
        __package__,
        "suppressions.html",
        tenant_id=tenant_id,
        tenants=tenants,
        rows=rows,
        note=note,
        error=error,
        can_add=await ctx.permits("suppressions", "add"),
        can_delete=await ctx.permits("suppressions", "delete"),
    )


async def render_bounce(ctx: PageContext) -> str:
    """The bounce mailbox: configuration (no password) and the state of its poller."""
    note = ""
    if ctx.method == "POST":
        await ctx.call("instance", "reload_bounce")
        note = "The bounce poller reconnects and polls now."
    config = await ctx.call("instance", "get_bounce_config")
    status = ctx.mp.receipt_handler_status(HANDLER_NAME)
    return await ctx.render_package(
        __package__,
        "bounce.html",
        config=config,
        note=note,
        last_poll_ts=status.last_poll_ts if status else config.get("last_poll_ts"),
        last_error=(status.last_error if status else None) or config.get("last_error"),
        polling=bool(status and status.polling),
        can_reload=await ctx.permits("instance", "reload_bounce"),
    )


def pages() -> list[DashboardPage]:
    """The plugin's dashboard pages."""
    return [
        DashboardPage(
            "suppressions",
            "Suppressions",
            render_suppressions,
            methods=("GET", "POST"),
            requires=("suppressions", "list"),
        ),
        DashboardPage(
            "bounce",
            "Bounce mailbox",
            render_bounce,
            admin_only=True,
            methods=("GET", "POST"),
            requires=("instance", "get_bounce_config"),
        ),
    ]
