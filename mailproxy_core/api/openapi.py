"""OpenAPI documentation of the generated routes, served by quart-schema.

quart-schema builds ``/openapi.json`` (and the ``/docs`` Swagger UI) from attributes set on view
functions. The generated routes validate requests themselves (so that errors come out in the
docs/api.md shape), so here we only *attach* the documentation: the request model as query
parameters (GET) or JSON body (POST), the response schema from the return annotation, the error
bodies, the entity as tag, and security. Security schemes: ``ApiToken`` (header
``X-API-Token``) and ``Bearer``; public methods document ``security: []``.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, cast

import swagger_ui
from pydantic import BaseModel, RootModel
from pydantic.errors import PydanticSchemaGenerationError, PydanticUserError
from quart import Quart, send_from_directory
from quart_schema import (
    APIKeySecurityScheme,
    HttpSecurityScheme,
    Info,
    OpenAPIProvider,
    QuartSchema,
    document_querystring,
    document_request,
    document_response,
    hide,
    operation_id,
    security_scheme,
    tag,
)
from quart_schema.conversion import model_schema
from werkzeug.exceptions import NotFound

from .endpoint import MethodInfo
from .signature import camel, without_args_section

logger = logging.getLogger(__name__)

SECURITY_SCHEMES: dict[str, Any] = {
    "ApiToken": APIKeySecurityScheme(name="X-API-Token", in_="header"),
    "Bearer": HttpSecurityScheme(scheme="bearer"),
}
SECURITY: list[dict[str, list[str]]] = [{"ApiToken": []}, {"Bearer": []}]


class ErrorBody(BaseModel):
    """Error: `detail` says what was wrong, `code` is machine readable; 422 lists `errors`."""

    detail: str
    code: str
    errors: list[dict[str, Any]] | None = None


class HealthStatus(BaseModel):
    """The process is up."""

    status: str


class MailproxyOpenAPIProvider(OpenAPIProvider):
    """quart-schema's provider, plus ``required`` on query parameters without a default.

    (quart-schema reads ``required`` per property, while pydantic lists it on the model.)
    """

    def build_querystring_parameters(
        self, model: type[Any]
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Query parameters of ``model``, with ``required: true`` where the model requires it."""
        parameters, definitions = super().build_querystring_parameters(model)
        required = set(model_schema(model).get("required", ()))
        for parameter in parameters:
            if parameter["name"] in required:
                parameter["required"] = True
        return parameters, definitions


DOCS_ASSETS_PATH = "/docs/assets/"
"""Where the Swagger UI files of ``/docs`` are served from: the service itself, no CDN."""

DOCS_ASSETS = frozenset({"swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png", "LICENSE"})
_SWAGGER_UI_FILES = Path(swagger_ui.__file__).parent / "static"


@hide
async def _docs_asset(name: str) -> Any:
    """One file of the Swagger UI distribution shipped by ``swagger-ui-py`` (Apache-2.0)."""
    if name not in DOCS_ASSETS:
        raise NotFound()
    response = await send_from_directory(_SWAGGER_UI_FILES, name)
    response.cache_control.public = True
    response.cache_control.max_age = 86400
    return response


def _package_version() -> str:
    try:
        return version("mailproxy-core")
    except PackageNotFoundError:
        return "0.0.0"


def install_openapi(app: Quart, *, title: str = "mail-proxy") -> QuartSchema:
    """Attach quart-schema to ``app`` (``/openapi.json``, ``/docs``) unless already attached.

    Returns:
        The app's ``QuartSchema`` extension (an existing one is returned unchanged, in which
        case its security schemes should be named ``ApiToken`` and ``Bearer`` like ours).
    """
    existing = app.extensions.get("QUART_SCHEMA")
    if isinstance(existing, QuartSchema):
        return existing
    # /docs must work without internet: its assets come from the installed swagger-ui-py.
    app.config["QUART_SCHEMA_SWAGGER_JS_URL"] = f"{DOCS_ASSETS_PATH}swagger-ui-bundle.js"
    app.config["QUART_SCHEMA_SWAGGER_CSS_URL"] = f"{DOCS_ASSETS_PATH}swagger-ui.css"
    app.add_url_rule(f"{DOCS_ASSETS_PATH}<name>", "docs_asset", _docs_asset)
    return QuartSchema(
        app,
        info=Info(title=title, version=_package_version()),
        security_schemes=SECURITY_SCHEMES,
        security=SECURITY,
        redoc_ui_path=None,
        scalar_ui_path=None,
        openapi_provider_class=MailproxyOpenAPIProvider,
    )


def _response_model(info: MethodInfo) -> type[BaseModel] | None:
    """A root model documenting the method's return annotation, or ``None`` if undocumentable."""
    try:
        root = cast(Any, RootModel)[info.returns]
        model: type[BaseModel] = type(
            f"{camel(info.entity)}_{camel(info.name)}Response",
            (root,),
            {"__doc__": "Success.", "__module__": __name__},
        )
        model.model_json_schema(mode="serialization")
    except (PydanticSchemaGenerationError, PydanticUserError, TypeError) as exc:
        logger.warning(
            "the return type of %s cannot be documented in OpenAPI: %s", info.qualname, exc
        )
        return None
    return model


def document_public_routes(app: Quart, paths: frozenset[str] | set[str]) -> None:
    """Document ``security: []`` on the app's routes served without credentials.

    For routes that are not generated (``/health``, plugin blueprints such as ``/metrics``):
    their ``public_paths`` are exempt from authentication, and the document must say so.
    """
    for rule in app.url_map.iter_rules():
        view = app.view_functions.get(rule.endpoint)
        # quart-schema's own routes (/openapi.json, /docs) are bound methods it hides anyway
        if inspect.isfunction(view) and rule.rule in paths:
            security_scheme([])(view)
            if rule.rule in ("/health", "/health/ready"):
                document_response(HealthStatus, 200)(view)
            if rule.rule == "/health/ready":
                document_response(ErrorBody, 503)(view)


def document_operation(view: Callable[..., Any], info: MethodInfo, *, public: bool) -> None:
    """Attach the OpenAPI description of ``info`` to its view function (in place).

    Summary and description come from the docstring, the tag from the entity, the operation id
    is ``<verb>_<entity>_<method>``; ``public`` routes document no security and no 401/403.
    """
    description = without_args_section(info.description)
    view.__doc__ = "\n".join(part for part in (info.summary, description) if part) or None
    tag([info.entity])(view)
    operation_id(f"{info.entity}_{info.name}")(view)
    if info.documented_body is not None:
        document_request(info.documented_body)(view)
    elif info.params or info.accepts_extra:
        if info.http_method == "POST":
            document_request(info.request_model)(view)
        else:
            document_querystring(info.request_model)(view)
    response = _response_model(info)
    if response is not None:
        document_response(response, 200)(view)
    # Every generated route may answer these: 400 a body that is not JSON, 404 an object that
    # does not exist, 405 another HTTP method on the path, 409 a conflict with stored state,
    # 413 a body over the size limit, 422 invalid input.
    for status in (400, 404, 405, 409, 413, 422):
        document_response(ErrorBody, status)(view)
    if public:
        security_scheme([])(view)
    else:
        document_response(ErrorBody, 401)(view)
        document_response(ErrorBody, 403)(view)
