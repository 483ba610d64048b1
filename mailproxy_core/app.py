"""``create_app(settings)``: the Quart application of one mail-proxy instance.

Everything is built here, per app: the plugin manager, the registry, the kernel, the generated
routes. Importing this module builds nothing, so tests can create as many isolated apps as they
like.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from quart import Quart, g, request
from quart_schema import hide

from .api.command_recording import install_command_recording
from .api.errors import database_unavailable_response, install_error_handlers, outage_log
from .api.generate import build_api
from .api.openapi import document_public_routes
from .api.oversize import DrainOversizedBodies
from .db.outage import is_unavailable
from .errors import AuthError
from .kernel import APP_KEY, MailProxy, Role, build_kernel
from .logs import install_access_log
from .models import Principal
from .settings import Settings, load_settings

PUBLIC_PATHS: frozenset[str] = frozenset(
    {"/health", "/health/ready", "/metrics", "/openapi.json", "/docs", "/docs/assets/"}
)
"""Paths that answer without credentials (docs/api.md)."""


def create_app(
    settings: Settings | None = None,
    *,
    role: Role = "serve",
    extra_plugins: Mapping[str, object] | None = None,
) -> Quart:
    """Build an app around a new kernel.

    Arguments: ``settings`` (default: loaded from the environment); ``role`` — ``serve`` runs the
    API and every background task; ``extra_plugins`` — in-process plugin objects registered by
    name after the discovered ones (tests, embedders).
    Raises: ``PluginError`` / ``ConfigurationError`` for a broken plugin set or configuration.
    """
    settings = settings if settings is not None else load_settings()
    mp = build_kernel(settings, extra_plugins=extra_plugins)
    app = Quart("mailproxy", static_folder=None)
    app.extensions[APP_KEY] = mp
    app.config["JSON_SORT_KEYS"] = False
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    # an oversized body is read (up to as much again) and dropped before the 413, so a client
    # still uploading reads the answer instead of a connection reset
    app.asgi_app = DrainOversizedBodies(  # type: ignore[method-assign,assignment]
        app.asgi_app, limit=settings.max_request_bytes, drain_bytes=settings.max_request_bytes
    )
    install_error_handlers(app)

    public = set(PUBLIC_PATHS)
    for route in mp.registry.routes:
        public.update(route.public_paths)
        app.register_blueprint(route.blueprint)
        if not route.in_openapi:
            prefix = f"{route.blueprint.name}."
            for endpoint, view in app.view_functions.items():
                if endpoint.startswith(prefix):
                    hide(getattr(view, "__func__", view))  # a bound method: static files
    route_blueprints = {route.blueprint.name for route in mp.registry.routes}
    # A public path ending in "/" is a prefix (e.g. "/download/" for signed download links).
    public_prefixes = tuple(path for path in public if path.endswith("/"))

    async def authenticate(req: Any) -> Principal | None:
        principal = await mp.auth.authenticate(req)
        g.principal = principal  # read by the command recorder
        return principal

    build_api(
        app,
        endpoints=[entry.spec for entry in mp.registry.endpoints],
        kernel=mp,
        authenticate=authenticate,
        public_paths=public,
    )
    install_command_recording(app, mp)
    install_access_log(app)

    @app.get("/health")
    async def health() -> dict[str, str]:
        """Liveness probe; never touches the database."""
        return {"status": "ok"}

    @app.get("/health/ready")
    async def ready() -> Any:
        """Readiness probe: one round trip to the database; 503 with Retry-After when it fails."""
        try:
            await mp.repos.instance.ping()
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            outage_log(app).failed(exc)
            return database_unavailable_response()
        outage_log(app).succeeded()
        return {"status": "ready"}

    @app.before_request
    async def authenticate_blueprint_routes() -> None:
        # Generated routes authenticate themselves; plugin blueprints are covered here.
        if request.blueprint not in route_blueprints or request.path in public:
            return
        if public_prefixes and request.path.startswith(public_prefixes):
            return
        principal = await mp.auth.authenticate(request)
        if principal is None:
            raise AuthError("missing or invalid API token (send X-API-Token)")
        g.principal = principal

    document_public_routes(app, public)

    @app.before_serving
    async def start_kernel() -> None:
        await mp.start(role)

    @app.after_serving
    async def stop_kernel() -> None:
        await mp.stop()

    return app


def kernel_of(app: Quart) -> MailProxy:
    """The kernel of an app built by ``create_app``."""
    mp = app.extensions[APP_KEY]
    assert isinstance(mp, MailProxy)
    return mp
