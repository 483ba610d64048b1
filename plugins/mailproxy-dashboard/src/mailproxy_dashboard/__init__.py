"""mail-proxy plugin ``dashboard``: a web interface at ``/ui/``.

Sign in with the admin token or a tenant API key; see the queue (Overview), find and act on
messages (Messages), read tenants and accounts, delivery-report sync (Reports) and loaded
plugins. Other plugins add pages with a ``dashboard_pages()`` function (see ``pages.py`` and
the plugin's README). Settings live in ``[plugins.dashboard]`` (``DashboardSettings``).
"""

from __future__ import annotations

from mailproxy_core import MailProxy, RouteSpec, SettingsSpec, hookimpl

from .pages import DashboardPage, PageContext
from .settings import SETTINGS_SECTION, DashboardSettings
from .views import build_blueprint, prepare

__version__ = "0.1.0"

__all__ = ["DashboardPage", "DashboardSettings", "PageContext"]


@hookimpl
def mailproxy_register_settings() -> list[SettingsSpec]:
    """The ``[plugins.dashboard]`` section."""
    return [SettingsSpec(SETTINGS_SECTION, DashboardSettings)]


@hookimpl
def mailproxy_register_routes() -> list[RouteSpec]:
    """Everything under ``/ui/``; the dashboard checks its own sessions, so the API token
    middleware lets these paths through."""
    return [RouteSpec("dashboard", build_blueprint(), public_paths=("/ui/",), in_openapi=False)]


@hookimpl
def mailproxy_startup(mp: MailProxy) -> None:
    """Collect the extra pages of other plugins; an invalid registration stops the start."""
    prepare(mp)
