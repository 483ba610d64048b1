"""Generate the ``/{entity}/{method}`` routes from endpoint classes (docs/api.md).

Request handling, in order: authenticate (skipped for ``@public`` methods and ``public_paths``;
no principal → 401), enforce ``@admin_only`` (403), read and validate the input (422 naming each
bad field), scope ``tenant_id`` for ``@tenant_scoped`` methods (403 / default to the caller's
tenant), call the method on a fresh ``EndpointClass(kernel, principal)``, answer 200 with JSON.

Input decisions:

* **Unknown fields are rejected** with 422 naming each one, in query strings and bodies alike: a
  client's typo (``tenantid``) must be visible, not silently ignored. A method that takes
  ``**kwargs`` accepts (and receives) extra fields instead.
* **GET query strings**: scalar parameters (str, int, float, bool, Literal, Enum) are coerced
  from their text by pydantic's lax mode (``limit=10``, ``active_only=true``/``1``/``yes``) and
  may appear once. Lists of scalars accept repeated keys (``ids=a&ids=b``, also ``ids[]=a``) or
  one JSON array (``ids=["a","b"]``). Any other type (dict, list of objects, model) is passed
  JSON-encoded (``config={"a":1}``). Invalid JSON → 422 for that field.
* A ``POST`` method marked ``@also_get`` is served as ``GET`` too, reading the query string.
* **POST bodies** must be a JSON object whose fields are the parameters (any content type is
  read as JSON, so ``curl -d`` works); an empty body means ``{}``. Malformed JSON → 400, valid
  JSON that is not an object → 422. The query string of a POST is ignored.
* **Nesting**: a body (or JSON-encoded query parameter) nested deeper than ``MAX_JSON_DEPTH``
  levels is refused with 422 ``json_too_deep`` before it is parsed, so no recursion over it
  can fail.
* **Large bodies** (over ``YIELDING_THRESHOLD_BYTES``, 1 MiB) are checked and parsed in pieces
  that hand the event loop back between them (``json_yielding``), so other requests are served
  meanwhile. The parsed body is kept on ``g`` (``json_yielding.PARSED_BODY``) for the command
  log, which would otherwise parse it again.

Results: dicts, lists, scalars, ``None``, dataclasses, pydantic models, enums and dates are
converted to JSON; a Quart ``Response`` is passed through unchanged.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError
from quart import Quart, Request, Response, current_app, g, request
from werkzeug.exceptions import BadRequest

from ..db.jsontext import JSONText
from ..errors import AuthError, Forbidden, InvalidInput
from ..models import Principal
from ..pacing import Pacer
from .auth import ROUTES_KEY, RouteInfo, route_endpoint
from .endpoint import (
    CHECKS_OWN_VALUES_ATTR,
    GET_FORM_SUFFIX,
    Endpoint,
    MethodInfo,
    Scope,
    collect_methods,
)
from .errors import field_errors, install_error_handlers, invalid_input
from .input_guard import unstorable_values
from .json_limits import too_deep, too_deep_message
from .json_yielding import (
    PARSED_BODY,
    YIELDING_THRESHOLD_BYTES,
    loads_yielding,
    too_deep_yielding,
)
from .openapi import document_operation, install_openapi
from .signature import ParamInfo, is_scalar, is_scalar_list, model_values

if TYPE_CHECKING:
    from ..specs import EndpointSpec

Authenticate = Callable[[Request], Awaitable[Principal | None]]


def build_api(
    app: Quart,
    *,
    endpoints: Sequence[EndpointSpec],
    kernel: Any,
    authenticate: Authenticate,
    public_paths: Iterable[str] = (),
) -> list[MethodInfo]:
    """Add one route per endpoint method to ``app``, with OpenAPI docs and JSON errors.

    Also installs the error handlers (:func:`install_error_handlers`) and quart-schema
    (``/openapi.json``, ``/docs``) when the app does not have them yet.

    Args:
        app: the Quart application.
        endpoints: every registered ``EndpointSpec``; specs sharing an entity are merged.
        kernel: the ``MailProxy`` object handed to each endpoint instance as ``mp``.
        authenticate: turns a request into a principal, or ``None`` (→ 401); usually
            ``AuthChain.authenticate``. May raise ``AuthError``/``Forbidden``.
        public_paths: paths served without authentication, like ``@public`` methods.

    Returns:
        The generated methods, in registration order (also usable for the CLI).

    Raises:
        PluginError: a duplicate ``entity.method``, a method without a scoping decision, or
            any other defect :func:`~mailproxy_core.api.endpoint.collect_methods` reports.
    """
    methods = collect_methods(endpoints)
    install_error_handlers(app)
    install_openapi(app)
    public = frozenset(public_paths)
    routes: dict[str, RouteInfo] = app.extensions.setdefault(ROUTES_KEY, {})
    for info in methods:
        forms = [info]
        if info.also_get:
            forms.append(dataclasses.replace(info, http_method="GET"))
        for form in forms:
            view = _make_view(form, kernel, authenticate, public)
            is_public = form.scope is Scope.PUBLIC or form.path in public
            suffix = "" if form is info else GET_FORM_SUFFIX
            document_operation(view, form, public=is_public)
            endpoint_name = route_endpoint(form.entity, form.name) + suffix
            # A write also served with GET stays a write: its declared method is recorded.
            routes[endpoint_name] = RouteInfo(
                entity=info.entity,
                method=info.name,
                http_method=info.http_method,
                path=info.path,
                scope=str(info.scope),
            )
            app.add_url_rule(
                form.path,
                endpoint=endpoint_name,
                view_func=view,
                methods=[form.http_method],
            )
    return methods


def _make_view(
    info: MethodInfo,
    kernel: Any,
    authenticate: Authenticate,
    public_paths: frozenset[str],
) -> Callable[[], Awaitable[Response]]:
    """The Quart view function serving one endpoint method."""

    async def view() -> Response:
        principal: Principal | None = None
        if info.scope is not Scope.PUBLIC and request.path not in public_paths:
            principal = await authenticate(request)
            if principal is None:
                raise AuthError(
                    "missing or invalid API token: send it as 'X-API-Token: <token>' or "
                    "'Authorization: Bearer <token>'"
                )
            if info.scope is Scope.ADMIN_ONLY and not principal.is_admin:
                raise Forbidden(f"{info.path} is reserved to the instance admin token")
        if info.http_method == "GET":
            values = _validate(info, *_query_input(info, request))
        else:
            values = _validate(info, await _body_input(info, request), [])
        if not getattr(getattr(info.endpoint, info.name), CHECKS_OWN_VALUES_ATTR, False):
            problems = unstorable_values(values)
            if problems:
                raise invalid_input(problems)
        endpoint: Endpoint = info.endpoint(kernel, principal)
        if info.scope is Scope.TENANT_SCOPED:
            values["tenant_id"] = _scoped_tenant_id(endpoint, info, values.get("tenant_id"))
        result = await getattr(endpoint, info.name)(**values)
        if isinstance(result, Response):
            return result
        return current_app.response_class(
            await encode_result(result),
            status=200,
            content_type="application/json",
        )

    view.__name__ = f"{info.entity}_{info.name}"
    view.__qualname__ = view.__name__
    return view


def _scoped_tenant_id(endpoint: Endpoint, info: MethodInfo, tenant_id: str | None) -> str | None:
    """Apply the ``@tenant_scoped`` rule; a required ``tenant_id`` must end up set."""
    required = any(param.required for param in info.params if param.name == "tenant_id")
    if required:
        return endpoint.require_tenant_id(tenant_id)
    return endpoint.own_tenant_id(tenant_id)


def _query_input(info: MethodInfo, req: Request) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Raw values from the query string, and the errors found while decoding them."""
    params: dict[str, ParamInfo] = {param.name: param for param in info.params}
    data: dict[str, Any] = {}
    errors: list[dict[str, Any]] = []
    for key in req.args.keys():
        values = req.args.getlist(key)
        name = key.removesuffix("[]")
        param = params.get(name)
        if param is None:
            data[name] = values[0] if len(values) == 1 else values
        elif is_scalar_list(param.annotation) and (
            len(values) > 1 or key.endswith("[]") or not values[0].lstrip().startswith("[")
        ):
            data[name] = values
        elif len(values) > 1:
            errors.append(
                {
                    "field": name,
                    "message": f"expected one value, got {len(values)}",
                    "type": "too_many_values",
                }
            )
        elif is_scalar(param.annotation):
            data[name] = values[0]
        elif too_deep(values[0]):
            errors.append({"field": name, "message": too_deep_message(), "type": "json_too_deep"})
        else:
            try:
                data[name] = json.loads(values[0])
            except ValueError as exc:
                errors.append(
                    {
                        "field": name,
                        "message": f"not valid JSON ({exc}); pass this parameter JSON-encoded",
                        "type": "json_invalid",
                    }
                )
    return data, errors


async def _body_input(info: MethodInfo, req: Request) -> dict[str, Any]:
    """The JSON object of a POST body (``{}`` when empty)."""
    raw = await req.get_data(as_text=False)
    if not raw.strip():
        return {}
    large = len(raw) > YIELDING_THRESHOLD_BYTES
    if await too_deep_yielding(raw) if large else too_deep(raw):
        # checked before parsing: every parser and walk over the body recurses once per level
        raise InvalidInput(
            f"body: {too_deep_message()}",
            code="json_too_deep",
            errors=[{"field": "body", "message": too_deep_message(), "type": "json_too_deep"}],
        )
    try:
        data = await loads_yielding(raw) if large else json.loads(raw)
    except ValueError as exc:
        raise BadRequest(
            f"the request body is not valid JSON ({exc}); send a JSON object whose fields are "
            f"the parameters of {info.path}"
        ) from exc
    if not isinstance(data, dict):
        message = f"must be a JSON object whose fields are the parameters, not {_json_type(data)}"
        raise InvalidInput(
            f"body: {message}",
            errors=[{"field": "body", "message": message, "type": "model_type"}],
        )
    setattr(g, PARSED_BODY, data)
    return data


def _validate(
    info: MethodInfo, data: dict[str, Any], errors: list[dict[str, Any]]
) -> dict[str, Any]:
    """Validate ``data`` with the method's request model; 422 lists every bad field."""
    try:
        model = info.request_model.model_validate(data)
    except ValidationError as exc:
        reported = {entry["field"] for entry in errors}
        more = [entry for entry in field_errors(exc) if entry["field"] not in reported]
        raise invalid_input(errors + more) from None
    if errors:
        raise invalid_input(errors)
    return model_values(model)


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "null"


async def encode_result(result: Any) -> str:
    """The JSON text of an endpoint result (see :func:`to_jsonable`).

    A list is encoded item by item, handing the loop back between items once a slice of work is
    used up (``mailproxy_core.pacing``): a page of a thousand large messages is tens of megabytes
    of JSON, a second of work in one piece. The text is the same as one ``json.dumps`` call's.

    A :class:`~mailproxy_core.db.jsontext.JSONText` inside the result is embedded as the value
    it encodes, without decoding it: it is replaced by a marker string unique to this call, the
    rest is encoded, and each quoted marker is then replaced by its text.
    """
    embedded: list[str] = []
    marker = f"mailproxy-embedded-{secrets.token_hex(16)}-"

    def embed(text: JSONText) -> str:
        embedded.append(text)
        return f"{marker}{len(embedded) - 1}"

    def dumps(value: Any) -> str:
        return json.dumps(to_jsonable(value, embed), ensure_ascii=False, allow_nan=False)

    if isinstance(result, list | tuple) and result:
        pacer = Pacer()
        items = []
        for item in result:
            items.append(dumps(item))
            await pacer.pause()
        encoded = "[" + ", ".join(items) + "]"  # json.dumps's own item separator
    else:
        encoded = dumps(result)
    if not embedded:
        return encoded
    pattern = re.compile(f'"{re.escape(marker)}(\\d+)"')
    return pattern.sub(lambda found: embedded[int(found.group(1))], encoded)


def to_jsonable(value: Any, embed: Callable[[JSONText], str] | None = None) -> Any:
    """Convert an endpoint result to plain JSON values.

    Dataclasses become objects (field by field, recursively, unlike ``asdict`` this copes with
    read-only mappings), pydantic models are dumped in JSON mode, mappings become objects with
    string keys, sequences and sets become arrays, enums their value, dates ISO 8601 text.

    ``embed``, when given, replaces each :class:`~mailproxy_core.db.jsontext.JSONText`.

    Raises:
        TypeError: a value of any other type (a server bug, answered as 500).
    """
    if isinstance(value, JSONText) and embed is not None:
        return embed(value)
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            field.name: to_jsonable(getattr(value, field.name), embed)
            for field in dataclasses.fields(value)
        }
    if isinstance(value, Mapping):
        return {str(key): to_jsonable(item, embed) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(item, embed) for item in value]
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value, embed)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    raise TypeError(f"cannot convert a {type(value).__name__} to JSON")
