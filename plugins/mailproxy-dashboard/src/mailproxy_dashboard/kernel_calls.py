"""The dashboard acts through the same endpoint methods the REST API serves.

``call(mp, principal, "messages", "retry", ids=[...])`` builds the registered endpoint class
for the signed-in principal and calls its method, so every rule of the API (validation, tenant
scoping, what a tenant key may see) applies unchanged. A ``tenant_id`` argument is scoped the
way the API scopes it: a tenant principal always acts on its own tenant.
"""

from __future__ import annotations

import inspect
from typing import Any

from mailproxy_core import Endpoint, Forbidden, MailProxy, NotFound, Principal


def endpoint_for(mp: MailProxy, principal: Principal, entity: str, method: str) -> Endpoint:
    """An instance of the endpoint class that serves ``entity/method`` for ``principal``.

    Raises:
        NotFound: no registered endpoint class has that method (a plugin is missing).
    """
    for registered in mp.registry.endpoints:
        spec = registered.spec
        if spec.entity == entity and callable(getattr(spec.endpoint, method, None)):
            return spec.endpoint(mp, principal)
    raise NotFound(f"the API has no {entity}/{method}: is the plugin that serves it installed?")


async def call(mp: MailProxy, principal: Principal, entity: str, method: str, **values: Any) -> Any:
    """Call ``entity/method`` as ``principal``, like the REST API would, and return its result.

    Raises:
        Forbidden: a tenant principal named another tenant, or called an admin-only method.
        MailproxyError: whatever the endpoint method raises (``NotFound``, ``InvalidInput``...).
    """
    endpoint = endpoint_for(mp, principal, entity, method)
    function = getattr(endpoint, method)
    if "tenant_id" in inspect.signature(function).parameters:
        values["tenant_id"] = endpoint.own_tenant_id(values.get("tenant_id"))
    if _admin_only(function) and not principal.is_admin:
        raise Forbidden(f"{entity}/{method} is reserved to the instance admin token")
    return await function(**values)


def _admin_only(function: Any) -> bool:
    # The scoping decision is recorded on the method by @admin_only (a StrEnum value).
    return str(getattr(function, "__mailproxy_scope__", "")) == "admin_only"
