"""The web dashboard's PEC page (``mailproxy-dashboard``): PEC accounts and their last poll.

Imported only by the ``mailproxy_dashboard_pages`` hook implementation, i.e. only where the
dashboard is installed. The accounts come from ``accounts/list_pec`` (``ctx.call``), scoped as
the REST API scopes it: the admin sees every tenant's PEC accounts, a tenant key its own.
"""

from __future__ import annotations

from mailproxy_dashboard import DashboardPage, PageContext

from .handler import HANDLER_NAME


async def render_pec(ctx: PageContext) -> str:
    """Every PEC account the user may see, with the state of its mailbox."""
    rows = await ctx.call("accounts", "list_pec")
    return await ctx.render_package(
        __package__,
        "pec.html",
        rows=rows,
        show_tenant=ctx.principal.is_admin,
        status=ctx.mp.receipt_handler_status(HANDLER_NAME),
    )


def pages() -> list[DashboardPage]:
    """The plugin's dashboard page."""
    return [DashboardPage("pec", "PEC accounts", render_pec, requires=("accounts", "list_pec"))]
