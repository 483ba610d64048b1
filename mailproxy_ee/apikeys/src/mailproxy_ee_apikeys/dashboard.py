"""The web dashboard's API keys page (``mailproxy-dashboard``): list, create, revoke.

Imported only by the ``mailproxy_dashboard_pages`` hook implementation, i.e. only where the
dashboard is installed. Every read and write goes through ``api_keys/list|add|revoke``
(``ctx.call``), so a tenant key manages only its own tenant's keys and needs the ``manage``
scope to create or revoke, exactly as with the REST API. A new key is shown once, in the
answer to the form that created it; only its hash is stored.
"""

from __future__ import annotations

from typing import Any

from mailproxy_core import MailproxyError
from mailproxy_dashboard import DashboardPage, PageContext

from .keys import ALL_SCOPES

KEYS = """\
{% if tenants | length > 1 %}
<form method="get" class="picker"><label>Tenant
<select name="tenant_id">{% for t in tenants %}<option{% if t == tenant_id %} selected{% endif %}>{{ t }}</option>{% endfor %}</select>
</label> <button type="submit">Show</button></form>
{% endif %}
{% if created %}
<div class="newkey" role="status">
<p><strong>New API key "{{ created.name }}"</strong> of {{ created.tenant_id }} ({{ created.scopes | join(", ") }}).
Copy it now: it is shown only this once and cannot be read again.</p>
<p><code id="new-key">{{ created.api_key }}</code></p>
</div>
{% endif %}
{% if note %}<p class="flash" role="status">{{ note }}</p>{% endif %}
{% if error %}<p class="flash error" role="alert">{{ error }}</p>{% endif %}
{% if tenant_id is none %}<p class="empty">No tenant yet: create one with <code>POST /tenants/add</code>.</p>
{% else %}
<p>API keys of <strong>{{ tenant_id }}</strong>. Scopes: <code>send</code> (send and read
messages), <code>read</code> (every read), <code>manage</code> (everything the tenant may do).</p>
{% if rows %}
<table>
<thead><tr><th scope="col">Name</th><th scope="col">Scopes</th><th scope="col">Created</th><th scope="col">Expires</th><th scope="col">Last used</th>{% if can_revoke %}<th scope="col"><span class="visually-hidden">Actions</span></th>{% endif %}</tr></thead>
<tbody>
{% for k in rows %}
<tr><th scope="row">{{ k.name }}</th><td>{{ k.scopes | join(", ") }}</td>
<td>{% if k.created_ts %}<time data-ts="{{ k.created_ts }}">{{ k.created_ts }}</time>{% endif %}</td>
<td>{% if k.expires_at %}<time data-ts="{{ k.expires_at }}">{{ k.expires_at }}</time>{% else %}never{% endif %}</td>
<td>{% if k.last_used_ts %}<time data-ts="{{ k.last_used_ts }}">{{ k.last_used_ts }}</time>{% else %}never{% endif %}</td>
{% if can_revoke %}<td><form method="post" class="inline">{{ csrf_field }}
<input type="hidden" name="tenant_id" value="{{ tenant_id }}">
<input type="hidden" name="action" value="revoke">
<input type="hidden" name="name" value="{{ k.name }}">
<button type="submit" class="danger" aria-label="Revoke the key {{ k.name }}">Revoke</button></form></td>{% endif %}</tr>
{% endfor %}
</tbody>
</table>
{% else %}<p class="empty">No API key: create one below.</p>{% endif %}
{% if can_add %}
<h2>Create a key</h2>
<form method="post" class="add-key">{{ csrf_field }}
<input type="hidden" name="tenant_id" value="{{ tenant_id }}">
<input type="hidden" name="action" value="add">
<label>Name <input name="name" required pattern="[A-Za-z0-9][A-Za-z0-9_.\\-]{0,63}" autocomplete="off"></label>
<fieldset><legend>Scopes</legend>
{% for s in scopes %}<label><input type="checkbox" name="scope_{{ s }}" value="1"{% if s == "send" %} checked{% endif %}> {{ s }}</label> {% endfor %}
</fieldset>
<button type="submit">Create key</button>
</form>
{% endif %}
{% endif %}"""


async def render_keys(ctx: PageContext) -> str:
    """A tenant's API keys; the form that creates one shows it once."""
    tenant_id, tenants = await ctx.tenant_choice()
    created: dict[str, Any] | None = None
    note = error = ""
    if ctx.method == "POST" and tenant_id is not None:
        name = ctx.form.get("name", "").strip()
        try:
            if ctx.form.get("action") == "add":
                scopes = [str(s) for s in ALL_SCOPES if ctx.form.get(f"scope_{s}")]
                created = await ctx.call(
                    "api_keys", "add", tenant_id=tenant_id, name=name, scopes=scopes
                )
            elif ctx.form.get("action") == "revoke":
                await ctx.call("api_keys", "revoke", tenant_id=tenant_id, name=name)
                note = f"The key {name} is revoked: it is refused from now on."
        except MailproxyError as failure:
            if getattr(failure, "status", 400) in (401, 403):
                raise
            error = str(failure)
    rows: list[dict[str, Any]] = []
    if tenant_id is not None:
        rows = await ctx.call("api_keys", "list", tenant_id=tenant_id)
    return await ctx.render(
        KEYS,
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
