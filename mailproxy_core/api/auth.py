"""The authentication chain of the API (docs/api.md; docs/architecture.md).

Authentication backends are plugins (``mailproxy_register_auth_backends``): the admin token, EE
tenant API keys, anything a third party adds. The chain asks them in order; the first that
recognises the request answers with a :class:`~mailproxy_core.models.Principal`. A backend that
does not own the credentials declines with ``None``; one that owns them but finds them wrong
raises ``AuthError``/``Forbidden``, which stops the chain and reaches the client as 401/403.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from quart import current_app

from ..models import Principal
from ..protocols import AuthBackend

if TYPE_CHECKING:
    from quart import Request

    from ..specs import AuthBackendSpec

logger = logging.getLogger(__name__)

TOKEN_HEADER = "X-API-Token"

ROUTES_KEY = "mailproxy_api_routes"
"""``app.extensions`` key: the generated routes by Quart endpoint name (:func:`route_info`)."""


@dataclass(frozen=True, slots=True)
class RouteInfo:
    """The generated ``/{entity}/{method}`` route a request is for.

    Lets an authentication backend decide by route, e.g. refuse a key whose scopes do not cover
    the call (see :func:`route_info`).

    Attributes:
        entity: the first path segment (``"messages"``).
        method: the endpoint method (``"add_batch"``).
        http_method: the method's declared HTTP method: ``"GET"`` for a read, ``"POST"`` for a
            write, also when the request reached a write through its ``GET`` form (routes that
            reference clients call with ``GET``, such as ``messages/cleanup``).
        path: ``"/messages/add_batch"``.
        scope: the method's scoping decision: ``"admin_only"``, ``"tenant_scoped"``,
            ``"any_principal"`` or ``"public"``.
    """

    entity: str
    method: str
    http_method: str
    path: str
    scope: str


def route_endpoint(entity: str, method: str) -> str:
    """The Quart endpoint name of the generated route ``/{entity}/{method}``.

    :func:`route_info` finds a route by ``request.endpoint``; code that asks the authentication
    chain about a credential on behalf of a route (the web dashboard checks whether a key's
    scopes allow ``messages/retry`` before offering the button) gives its stand-in request
    this ``endpoint``, so every backend decides exactly as it would for the real API call.
    """
    return f"mailproxy_api:{entity}:{method}"


def route_info(request: Request) -> RouteInfo | None:
    """The generated route ``request`` is for, or ``None`` (a plugin blueprint route).

    Call it inside the request, e.g. in ``AuthBackend.authenticate``::

        route = route_info(request)
        if route is not None and route.http_method == "GET":
            ...  # a read of the generated API
    """
    routes: Mapping[str, RouteInfo] = current_app.extensions.get(ROUTES_KEY, {})
    endpoint = request.endpoint
    return routes.get(endpoint) if endpoint else None


def extract_token(request: Request) -> str | None:
    """The API token a request carries, or ``None``.

    Reads ``X-API-Token: <token>`` first, then ``Authorization: Bearer <token>`` (the scheme is
    case-insensitive). Surrounding whitespace is ignored; an empty value counts as absent.
    """
    token = request.headers.get(TOKEN_HEADER, "").strip()
    if token:
        return token
    scheme, _, credentials = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None


class AuthChain:
    """Asks authentication backends in order; the first non-``None`` principal wins.

    Args:
        backends: ``(name, backend)`` pairs, already in the order they must be asked.
    """

    def __init__(self, backends: Iterable[tuple[str, AuthBackend]]) -> None:
        self._backends: tuple[tuple[str, AuthBackend], ...] = tuple(backends)

    @classmethod
    def from_specs(cls, specs: Iterable[AuthBackendSpec], mp: Any) -> AuthChain:
        """Build the chain from registered specs: ascending ``order``, ties in registration order.

        Args:
            specs: the ``AuthBackendSpec`` objects of every plugin.
            mp: the ``MailProxy`` kernel handed to each factory.
        """
        ordered = sorted(specs, key=lambda spec: spec.order)
        return cls((spec.name, spec.factory(mp)) for spec in ordered)

    @property
    def names(self) -> Sequence[str]:
        """Backend names in the order they are asked."""
        return tuple(name for name, _ in self._backends)

    async def authenticate(self, request: Request) -> Principal | None:
        """The caller of ``request``, or ``None`` when no backend recognises it.

        Raises:
            AuthError: a backend owns the credentials and rejects them (401, or 403 for
                ``Forbidden``); later backends are not asked.
        """
        for name, backend in self._backends:
            principal = await backend.authenticate(request)
            if principal is not None:
                logger.debug(
                    "request authenticated by %s",
                    name,
                    extra={"auth_backend": name, "tenant_id": principal.tenant_id},
                )
                return principal
        return None
