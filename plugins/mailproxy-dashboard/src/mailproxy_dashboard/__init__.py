"""mail-proxy plugin ``dashboard``: a web interface at ``/ui/``.

Sign in with the admin token or a tenant API key; see the queue (Overview), find and act on
messages (Messages), read tenants and accounts, delivery-report sync (Reports) and loaded
plugins. Other plugins add pages by implementing the ``mailproxy_dashboard_pages`` hook, which
the dashboard adds to the plugin manager (see ``pages.py`` and docs/dashboard.md). Settings live
in ``[plugins.dashboard]`` (``DashboardSettings``).
"""

from __future__ import annotations

from mailproxy_core import MailProxy, RouteSpec, SettingsSpec, hookimpl

from .pages import DashboardHookSpecs, DashboardPage, PageContext
from .settings import SETTINGS_SECTION, DashboardSettings
from .views import build_blueprint, prepare

__version__ = "0.1.0"

__all__ = ["DashboardHookSpecs", "DashboardPage", "DashboardSettings", "PageContext"]


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
    """Add the ``mailproxy_dashboard_pages`` hook and collect the extra pages of other plugins;
    an invalid registration stops the start."""
    prepare(mp)
