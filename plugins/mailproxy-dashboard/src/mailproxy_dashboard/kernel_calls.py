"""The dashboard acts through the same endpoint methods the REST API serves.

``Caller(mp, principal, token).call("messages", "retry", ids=[...])`` builds the registered
endpoint class for the signed-in principal and calls its method, so every rule of the API
(validation, tenant scoping, what a tenant key may see) applies unchanged:

* a ``tenant_id`` argument is scoped the way the API scopes it: a tenant principal always acts
  on its own tenant;
* an ``@admin_only`` method is refused to a tenant principal (403);
* the credential is asked again, through the kernel's authentication chain, whether it may call
  that API route (``permits``): a scope-limited API key is refused (403) exactly where the API
  would refuse it, and the dashboard hides the links and buttons it could not use.
"""

from __future__ import annotations

import inspect
from typing import Any

from mailproxy_core import (
    Endpoint,
    Forbidden,
    MailProxy,
    NotFound,
    Principal,
    Scope,
    method_scope,
)

from .guard import Route, authenticate_token


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


def has_route(mp: MailProxy, entity: str, method: str) -> bool:
    """Whether some loaded plugin serves ``entity/method``."""
    return any(
        registered.spec.entity == entity
        and callable(getattr(registered.spec.endpoint, method, None))
        for registered in mp.registry.endpoints
    )


class Caller:
    """The signed-in user of one request, calling API endpoint methods as the API would.

    ``permits`` answers are kept for the request (a page asks about each link it shows).
    """

    def __init__(self, mp: MailProxy, principal: Principal, token: str) -> None:
        self.mp = mp
        self.principal = principal
        self._token = token
        self._permits: dict[Route, bool] = {}

    async def permits(self, entity: str, method: str) -> bool:
        """Whether this credential may call the API route ``entity/method``.

        Asks the authentication chain with the route (a key's scopes decide as for the API
        call), then applies ``@admin_only`` like the generated route. ``False`` also when no
        plugin serves the route.
        """
        route = (entity, method)
        if route not in self._permits:
            self._permits[route] = await self._ask(entity, method)
        return self._permits[route]

    async def _ask(self, entity: str, method: str) -> bool:
        if not has_route(self.mp, entity, method):
            return False
        function = getattr(endpoint_for(self.mp, self.principal, entity, method), method)
        if method_scope(function) is Scope.ADMIN_ONLY and not self.principal.is_admin:
            return False
        principal = await authenticate_token(self.mp, self._token, (entity, method))
        return principal is not None and principal == self.principal

    async def call(self, entity: str, method: str, **values: Any) -> Any:
        """Call ``entity/method`` as this user, like the REST API would, and return its result.

        Raises:
            Forbidden: a tenant principal named another tenant, called an admin-only method, or
                its credential's scopes do not allow the route.
            MailproxyError: whatever the endpoint method raises (``NotFound``, ``InvalidInput``...).
        """
        endpoint = endpoint_for(self.mp, self.principal, entity, method)
        function = getattr(endpoint, method)
        if method_scope(function) is Scope.ADMIN_ONLY and not self.principal.is_admin:
            raise Forbidden(f"{entity}/{method} is reserved to the instance admin token")
        if not await self.permits(entity, method):
            raise Forbidden(
                f"your credential may not use {entity}/{method} (an API key without the scope "
                "it needs); ask for a key with that scope"
            )
        if "tenant_id" in inspect.signature(function).parameters:
            values["tenant_id"] = endpoint.own_tenant_id(values.get("tenant_id"))
        return await function(**values)
