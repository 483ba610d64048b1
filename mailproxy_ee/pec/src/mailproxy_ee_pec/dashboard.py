"""The web dashboard's PEC page (``mailproxy-dashboard``): PEC accounts and their last poll.

Imported only by the ``mailproxy_dashboard_pages`` hook implementation, i.e. only where the
dashboard is installed. The accounts come from ``accounts/list_pec`` (``ctx.call``), scoped as
the REST API scopes it: the admin sees every tenant's PEC accounts, a tenant key its own.
"""

from __future__ import annotations

from mailproxy_dashboard import DashboardPage, PageContext

from .handler import HANDLER_NAME

PEC = """\
<p>PEC accounts send through their SMTP server and read the PEC receipts from their IMAP
mailbox.
{% if status %}The receipt poller last completed a round
{% if status.last_poll_ts %}<time data-ts="{{ status.last_poll_ts | int }}">{{ status.last_poll_ts }}</time>{% else %}never{% endif %}{% if status.polling %} (in this process){% endif %}{% if status.last_error %}; last error: <span class="error">{{ status.last_error }}</span>{% endif %}.{% endif %}</p>
{% if rows %}
<table>
<thead><tr>{% if show_tenant %}<th scope="col">Tenant</th>{% endif %}<th scope="col">Account</th><th scope="col">Sends through</th><th scope="col">Mailbox</th><th scope="col">Last poll</th><th scope="col">Last error</th></tr></thead>
<tbody>
{% for a in rows %}
<tr>{% if show_tenant %}<td>{{ a.tenant_id }}</td>{% endif %}<th scope="row">{{ a.id }}</th>
<td>{{ a.host }}:{{ a.port }}</td>
<td>{{ a.imap_user or "—" }} @ {{ a.imap_host }}:{{ a.imap_port }} / {{ a.imap_folder }}</td>
<td>{% if a.last_poll_ts %}<time data-ts="{{ a.last_poll_ts }}">{{ a.last_poll_ts }}</time>{% else %}never{% endif %}</td>
<td>{% if a.last_error %}<span class="error">{{ a.last_error }}</span>{% else %}—{% endif %}</td></tr>
{% endfor %}
</tbody>
</table>
{% else %}<p class="empty">No PEC account: add one with <code>POST /accounts/add_pec</code>.</p>{% endif %}"""


async def render_pec(ctx: PageContext) -> str:
    """Every PEC account the user may see, with the state of its mailbox."""
    rows = await ctx.call("accounts", "list_pec")
    return await ctx.render(
        PEC,
        rows=rows,
        show_tenant=ctx.principal.is_admin,
        status=ctx.mp.receipt_handler_status(HANDLER_NAME),
    )


def pages() -> list[DashboardPage]:
    """The plugin's dashboard page."""
    return [DashboardPage("pec", "PEC accounts", render_pec, requires=("accounts", "list_pec"))]
