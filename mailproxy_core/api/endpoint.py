"""Endpoint classes: the one place an API operation is declared (docs/api.md).

An entity (``tenants``, ``messages`` ...) is a subclass of :class:`Endpoint` registered with an
``EndpointSpec(entity, cls)``. Each public ``async def`` method becomes the route
``/{entity}/{method}``, a CLI command and an OpenAPI operation, all read from its signature and
docstring. Methods are ``GET`` with query parameters unless marked :func:`POST`, which takes a
JSON body whose fields are the parameters.

Every public method carries exactly one **scoping decision**, so that forgetting tenant isolation
is a startup error rather than a data leak:

* :func:`admin_only` — the instance admin only; a tenant key gets 403.
* :func:`tenant_scoped` — the method has a ``tenant_id`` parameter; a tenant key may only pass its
  own id (403 otherwise) and a missing ``tenant_id`` defaults to it; the admin passes any id.
* :func:`any_principal` — any authenticated caller; the method scopes itself with
  ``self.principal`` and the helpers below.
* :func:`public` — no authentication at all (``instance/health``).

Example::

    class Tenants(Endpoint):
        @POST
        @admin_only
        async def add(self, id: str, name: str | None = None) -> dict[str, Any]:
            \"\"\"Create a tenant.

            Args:
                id: the tenant id chosen by the client application.
                name: a display name.
            \"\"\"
"""

from __future__ import annotations

import enum
import inspect
import re
import typing
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel

from ..errors import AuthError, Forbidden, InvalidInput, PluginError
from ..models import Principal
from .signature import ParamInfo, build_request_model, camel, read_params, split_docstring

if TYPE_CHECKING:
    from ..kernel import MailProxy
    from ..specs import EndpointSpec

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

HttpMethod = Literal["GET", "POST"]

_SCOPE_ATTR = "__mailproxy_scope__"
_HTTP_METHOD_ATTR = "__mailproxy_http_method__"
_ENTITY_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
TENANT_ID_NOTE = "Tenant keys may omit it (their own tenant is used); the admin must pass it."


class Scope(enum.StrEnum):
    """The scoping decision of an endpoint method (see the module docstring)."""

    ADMIN_ONLY = "admin_only"
    TENANT_SCOPED = "tenant_scoped"
    ANY_PRINCIPAL = "any_principal"
    PUBLIC = "public"


def POST(func: F) -> F:
    """Mark an endpoint method as ``POST``: its parameters are the fields of a JSON body."""
    setattr(func, _HTTP_METHOD_ATTR, "POST")
    return func


ALSO_GET_ATTR = "__mailproxy_also_get__"
GET_FORM_SUFFIX = "#get"
"""Added to the Quart endpoint name of the ``GET`` form of an ``@also_get`` method (a character
no method name has, so that it never collides with a method's own route)."""


def also_get(func: F) -> F:
    """A ``POST`` method also served as ``GET``, its fields then read from the query string.

    For compatibility only: some genro-mail-proxy clients call a write with ``GET``
    (``messages/cleanup``). Authentication and scoping are the same for both forms.
    """
    setattr(func, ALSO_GET_ATTR, True)
    return func


CHECKS_OWN_VALUES_ATTR = "_mailproxy_checks_own_values"
DOCUMENTED_BODY_ATTR = "_mailproxy_documented_body"


def documented_body(model: type[BaseModel]) -> Callable[[F], F]:
    """Document the JSON body of a method by ``model`` in OpenAPI (documentation only).

    For methods that check their body themselves (``messages/add`` takes ``**message``), so
    that the OpenAPI document still lists every field with its type and description.
    """

    def decorate(func: F) -> F:
        setattr(func, DOCUMENTED_BODY_ATTR, model)
        return func

    return decorate


def checks_own_values(func: F) -> F:
    """The method checks its input for unstorable values itself (NUL, surrogates, huge ints).

    Without it, the generated route answers 422 for such values before calling the method; with
    it, the method may report them its own way (``messages/add_batch`` rejects one entry and
    stores the others).
    """
    setattr(func, CHECKS_OWN_VALUES_ATTR, True)
    return func


def _scope_decorator(scope: Scope) -> Callable[[F], F]:
    def decorate(func: F) -> F:
        existing = getattr(func, _SCOPE_ATTR, None)
        if existing is not None and existing is not scope:
            raise PluginError(
                f"endpoint method {func.__qualname__} is marked both @{existing} and @{scope}; "
                "choose exactly one scoping decision"
            )
        setattr(func, _SCOPE_ATTR, scope)
        return func

    decorate.__name__ = str(scope)
    return decorate


admin_only = _scope_decorator(Scope.ADMIN_ONLY)
admin_only.__doc__ = "Scoping decision: only the instance admin may call the method (else 403)."
tenant_scoped = _scope_decorator(Scope.TENANT_SCOPED)
tenant_scoped.__doc__ = (
    "Scoping decision: the method's ``tenant_id`` is checked against a tenant caller "
    "(403 when not its own) and defaults to the caller's tenant."
)
any_principal = _scope_decorator(Scope.ANY_PRINCIPAL)
any_principal.__doc__ = (
    "Scoping decision: any authenticated caller; the method scopes itself via ``self.principal``."
)
public = _scope_decorator(Scope.PUBLIC)
public.__doc__ = "Scoping decision: no authentication (health checks and the like)."


def method_scope(function: Callable[..., Any]) -> Scope | None:
    """The scoping decision of an endpoint method, or ``None`` for a function without one.

    For code that calls endpoint methods itself, the way the generated routes do (the web
    dashboard): ``method_scope(Messages.retry) is Scope.TENANT_SCOPED``. Works on functions
    and bound methods alike.

    Example::

        if method_scope(endpoint.plugins) is Scope.ADMIN_ONLY and not principal.is_admin:
            raise Forbidden("reserved to the instance admin token")
    """
    scope = getattr(function, _SCOPE_ATTR, None)
    return scope if isinstance(scope, Scope) else None


class Endpoint:
    """Base class of API entities; one instance is built per request.

    Attributes:
        mp: the running ``MailProxy`` kernel (settings, database, registry, ...).
        principal: the authenticated caller, ``None`` only in :func:`public` methods.
    """

    def __init__(self, mp: MailProxy, principal: Principal | None) -> None:
        self.mp = mp
        self.principal = principal

    @property
    def is_admin(self) -> bool:
        """Whether the caller is the instance admin."""
        return self.principal is not None and self.principal.is_admin

    def require_principal(self) -> Principal:
        """The caller; raises ``AuthError`` (401) when the request is unauthenticated."""
        if self.principal is None:
            raise AuthError(
                "this operation needs credentials: send X-API-Token or Authorization: Bearer"
            )
        return self.principal

    def require_admin(self) -> Principal:
        """The caller, who must be the admin; raises ``Forbidden`` (403) for a tenant key."""
        principal = self.require_principal()
        if not principal.is_admin:
            raise Forbidden("this operation is reserved to the instance admin token")
        return principal

    def own_tenant_id(self, tenant_id: str | None) -> str | None:
        """Scope a ``tenant_id`` argument to the caller.

        A tenant caller gets its own id when ``tenant_id`` is ``None``; the admin gets
        ``tenant_id`` unchanged (possibly ``None``).

        Raises:
            Forbidden: a tenant caller passed another tenant's id.
            AuthError: the request is unauthenticated.
        """
        principal = self.require_principal()
        if principal.is_admin:
            return tenant_id
        if tenant_id is None or tenant_id == principal.tenant_id:
            return principal.tenant_id
        raise Forbidden(
            f"tenant_id {tenant_id!r} is not yours: a tenant key may only act on its own tenant"
        )

    def require_tenant_id(self, tenant_id: str | None) -> str:
        """Like :meth:`own_tenant_id`, but the result is never ``None``.

        Raises:
            InvalidInput: the admin did not pass ``tenant_id`` (422).
            Forbidden: a tenant caller passed another tenant's id.
        """
        scoped = self.own_tenant_id(tenant_id)
        if scoped is None:
            raise InvalidInput(
                "tenant_id: Field required",
                errors=[{"field": "tenant_id", "message": "Field required", "type": "missing"}],
            )
        return scoped


@dataclass(frozen=True, slots=True)
class MethodInfo:
    """Everything generated from one endpoint method: route, CLI command, OpenAPI operation.

    ``request_model`` validates the query string (GET) or JSON body (POST); ``endpoint`` is the
    class that defines the method and ``returns`` its resolved return annotation.
    """

    entity: str
    name: str
    http_method: HttpMethod
    path: str
    scope: Scope
    params: tuple[ParamInfo, ...]
    docstring: str
    request_model: type[BaseModel]
    endpoint: type[Endpoint]
    returns: Any = Any
    accepts_extra: bool = False
    documented_body: type[BaseModel] | None = None
    also_get: bool = False

    @property
    def qualname(self) -> str:
        """``entity.method``, as used in error messages."""
        return f"{self.entity}.{self.name}"

    @property
    def summary(self) -> str:
        """The docstring's first line."""
        return split_docstring(self.docstring)[0]

    @property
    def description(self) -> str:
        """The docstring after its first line."""
        return split_docstring(self.docstring)[1]

    @property
    def owner(self) -> str:
        """``module.Class`` of the defining endpoint class, for error messages."""
        return f"{self.endpoint.__module__}.{self.endpoint.__qualname__}"


def _route_functions(cls: type[Endpoint], entity: str) -> dict[str, Callable[..., Any]]:
    """Public ``async def`` methods of ``cls`` and its bases (not of ``Endpoint``), in order."""
    found: dict[str, Callable[..., Any]] = {}
    for klass in reversed(cls.__mro__):
        if klass is object or klass is Endpoint:
            continue
        for name, attr in vars(klass).items():
            if name.startswith("_"):
                continue
            if inspect.iscoroutinefunction(attr):
                found[name] = attr
                continue
            found.pop(name, None)
            target = attr.__func__ if isinstance(attr, staticmethod | classmethod) else attr
            if callable(target) and hasattr(target, _SCOPE_ATTR):
                raise PluginError(
                    f"endpoint method {entity}.{name} of {cls.__module__}.{cls.__qualname__} "
                    "is decorated as a route but is not a plain 'async def' method"
                )
    return found


def describe_endpoint(entity: str, cls: type[Endpoint]) -> list[MethodInfo]:
    """Introspect one endpoint class registered for ``entity``.

    Args:
        entity: the first path segment (lowercase letters, digits, ``_``).
        cls: an :class:`Endpoint` subclass.

    Returns:
        One :class:`MethodInfo` per public ``async def`` method, in definition order.

    Raises:
        PluginError: a bad entity name, a class that is not an ``Endpoint``, a method without
            (exactly one) scoping decision, a ``tenant_scoped`` method without ``tenant_id``,
            a type hint that cannot be resolved at runtime, or a parameter pydantic cannot use.
    """
    owner = f"{cls.__module__}.{getattr(cls, '__qualname__', cls)}"
    if not _ENTITY_NAME.match(entity):
        raise PluginError(
            f"endpoint entity {entity!r} ({owner}) must be lowercase letters, digits and '_'"
        )
    if not (isinstance(cls, type) and issubclass(cls, Endpoint)):
        raise PluginError(f"endpoint for {entity!r} must be a subclass of Endpoint, got {owner}")
    infos: list[MethodInfo] = []
    for name, func in _route_functions(cls, entity).items():
        where = f"{entity}.{name}"
        scope = getattr(func, _SCOPE_ATTR, None)
        if scope is None:
            raise PluginError(
                f"endpoint method {where} ({owner}) has no scoping decision: decorate it with "
                "@admin_only, @tenant_scoped, @any_principal or @public"
            )
        try:
            hints = typing.get_type_hints(func, include_extras=True)
        except (NameError, TypeError, AttributeError) as exc:
            raise PluginError(
                f"endpoint method {where} ({owner}): cannot resolve its type hints ({exc}); "
                "import the types it uses at runtime, not under TYPE_CHECKING"
            ) from exc
        params, accepts_extra = read_params(func, hints, where)
        relaxed: frozenset[str] = frozenset()
        notes: dict[str, str] = {}
        if scope is Scope.TENANT_SCOPED:
            if not any(param.name == "tenant_id" for param in params):
                raise PluginError(
                    f"endpoint method {where} ({owner}) is @tenant_scoped but has no "
                    "'tenant_id' parameter; use @any_principal and scope it yourself"
                )
            relaxed = frozenset({"tenant_id"})
            notes["tenant_id"] = TENANT_ID_NOTE
        http_method: HttpMethod = getattr(func, _HTTP_METHOD_ATTR, "GET")
        model = build_request_model(
            f"{camel(entity)}_{camel(name)}Request",
            params,
            accepts_extra=accepts_extra,
            relaxed=relaxed,
            notes=notes,
            where=where,
        )
        infos.append(
            MethodInfo(
                entity=entity,
                name=name,
                http_method=http_method,
                path=f"/{entity}/{name}",
                scope=scope,
                params=params,
                docstring=inspect.getdoc(func) or "",
                request_model=model,
                endpoint=cls,
                returns=hints.get("return", Any),
                accepts_extra=accepts_extra,
                documented_body=getattr(func, DOCUMENTED_BODY_ATTR, None),
                also_get=http_method == "POST" and getattr(func, ALSO_GET_ATTR, False),
            )
        )
    return infos


def collect_methods(specs: Iterable[EndpointSpec]) -> list[MethodInfo]:
    """Introspect every registered endpoint spec, merging specs that share an entity.

    A plugin may add methods to an existing entity (``tenants``) with its own spec; the same
    method name twice for one entity is an error.

    Returns:
        All methods, in spec order then definition order.

    Raises:
        PluginError: see :func:`describe_endpoint`; also a duplicate ``entity.method``, naming
            both defining classes.
    """
    seen: dict[tuple[str, str], MethodInfo] = {}
    for spec in specs:
        for info in describe_endpoint(spec.entity, spec.endpoint):
            key = (info.entity, info.name)
            if key in seen:
                raise PluginError(
                    f"endpoint method {info.qualname} is defined twice: by {seen[key].owner} and "
                    f"by {info.owner}; rename one of them (each entity.method must be unique)"
                )
            seen[key] = info
    return list(seen.values())
