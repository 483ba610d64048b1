"""Pages of the web dashboard (``mailproxy-dashboard``): suppressions and the bounce mailbox.

Imported only by the ``mailproxy_dashboard_pages`` hook implementation, i.e. only where the
dashboard is installed. Every read and write goes through this plugin's own API endpoint
methods (``ctx.call``), so tenant scoping, admin-only routes and API-key scopes are those of
the REST API.
"""

from __future__ import annotations

from typing import Any

from mailproxy_core import MailproxyError
from mailproxy_dashboard import DashboardPage, PageContext

from .handler import HANDLER_NAME

TENANT_PICKER = """\
{% if tenants | length > 1 %}
<form method="get" class="picker"><label>Tenant
<select name="tenant_id">{% for t in tenants %}<option{% if t == tenant_id %} selected{% endif %}>{{ t }}</option>{% endfor %}</select>
</label> <button type="submit">Show</button></form>
{% endif %}"""

SUPPRESSIONS = (
    TENANT_PICKER
    + """
{% if note %}<p class="flash" role="status">{{ note }}</p>{% endif %}
{% if error %}<p class="flash error" role="alert">{{ error }}</p>{% endif %}
{% if tenant_id is none %}<p class="empty">No tenant yet: create one with <code>POST /tenants/add</code>.</p>
{% else %}
<p>Messages of <strong>{{ tenant_id }}</strong> are not sent to these addresses (hard bounces,
complaints, or added by hand).</p>
{% if can_add %}
<form method="post" class="add-suppression">{{ csrf_field }}
<input type="hidden" name="tenant_id" value="{{ tenant_id }}">
<input type="hidden" name="action" value="add">
<label>Address <input name="address" type="email" required autocomplete="off"></label>
<label>Reason <input name="reason" value="manual"></label>
<button type="submit">Suppress</button>
</form>
{% endif %}
{% if rows %}
<table>
<thead><tr><th scope="col">Address</th><th scope="col">Reason</th><th scope="col">Since</th>{% if can_delete %}<th scope="col"><span class="visually-hidden">Actions</span></th>{% endif %}</tr></thead>
<tbody>
{% for r in rows %}
<tr><th scope="row">{{ r.address }}</th><td>{{ r.reason }}</td>
<td>{% if r.created_ts %}<time data-ts="{{ r.created_ts }}">{{ r.created_ts }}</time>{% endif %}</td>
{% if can_delete %}<td><form method="post" class="inline">{{ csrf_field }}
<input type="hidden" name="tenant_id" value="{{ tenant_id }}">
<input type="hidden" name="action" value="delete">
<input type="hidden" name="address" value="{{ r.address }}">
<button type="submit" class="danger" aria-label="Send to {{ r.address }} again">Remove</button></form></td>{% endif %}</tr>
{% endfor %}
</tbody>
</table>
{% else %}<p class="empty">No suppressed address: bounces the mailbox reads will add them, or add one above.</p>{% endif %}
{% endif %}"""
)

BOUNCE = """\
{% if note %}<p class="flash" role="status">{{ note }}</p>{% endif %}
<h2>Configuration</h2>
<dl class="grid">
<dt>Enabled</dt><dd>{{ "yes" if config.enabled else "no" }}</dd>
<dt>IMAP server</dt><dd>{% if config.imap_host %}{{ config.imap_host }}:{{ config.imap_port }} ({{ "TLS" if config.imap_ssl else "plain / STARTTLS" }}){% else %}not set{% endif %}</dd>
<dt>User</dt><dd>{{ config.imap_user or "—" }}</dd>
<dt>Password</dt><dd>{{ "set" if config.has_imap_password else "not set" }}</dd>
<dt>Folder</dt><dd>{{ config.imap_folder }}</dd>
<dt>Poll interval</dt><dd>{{ config.poll_interval }} s</dd>
<dt>Return path</dt><dd>{{ config.return_path or "not set" }}</dd>
</dl>
<p>Change it with <code>POST /instance/set_bounce_config</code>.</p>
<h2>Mailbox status</h2>
<dl class="grid">
<dt>Last successful poll</dt><dd>{% if last_poll_ts %}<time data-ts="{{ last_poll_ts | int }}">{{ last_poll_ts }}</time>{% else %}never{% endif %}</dd>
<dt>Last error</dt><dd>{% if last_error %}<span class="error">{{ last_error }}</span>{% else %}none{% endif %}</dd>
<dt>Polled by this process</dt><dd>{{ "yes" if polling else "no" }}</dd>
</dl>
{% if can_reload %}
<form method="post">{{ csrf_field }}<button type="submit">Reconnect and poll now</button></form>
{% endif %}"""


async def render_suppressions(ctx: PageContext) -> str:
    """The suppression list of one tenant, with add and remove (``suppressions/*``)."""
    tenant_id, tenants = await ctx.tenant_choice()
    note = error = ""
    if ctx.method == "POST" and tenant_id is not None:
        address = ctx.form.get("address", "").strip()
        try:
            if ctx.form.get("action") == "add":
                reason = ctx.form.get("reason", "").strip() or "manual"
                entry = await ctx.call(
                    "suppressions", "add", tenant_id=tenant_id, address=address, reason=reason
                )
                note = f"{entry['address']} is suppressed: nothing more is sent to it."
            elif ctx.form.get("action") == "delete":
                result = await ctx.call(
                    "suppressions", "delete", tenant_id=tenant_id, address=address
                )
                note = (
                    f"{address} removed: messages are sent to it again."
                    if result.get("removed")
                    else f"{address} was not on the list."
                )
        except MailproxyError as failure:
            if getattr(failure, "status", 400) in (401, 403):
                raise
            error = str(failure)
    rows: list[dict[str, Any]] = []
    if tenant_id is not None:
        rows = await ctx.call("suppressions", "list", tenant_id=tenant_id)
    return await ctx.render(
        SUPPRESSIONS,
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
    return await ctx.render(
        BOUNCE,
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
