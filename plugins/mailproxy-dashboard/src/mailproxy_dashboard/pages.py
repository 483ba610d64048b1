"""Extra dashboard pages from other plugins (EE plugins, third parties).

A plugin adds pages by defining, next to its hook implementations, a module-level function
(or a method of its plugin object) named ``dashboard_pages`` that returns
:class:`DashboardPage` objects::

    from mailproxy_dashboard import DashboardPage

    async def render_suppressions(ctx):
        rows = await ctx.mp.data.fetch_all("SELECT address FROM ee_bounce_suppressions")
        return "<ul>" + "".join(f"<li>{ctx.escape(r['address'])}</li>" for r in rows) + "</ul>"

    def dashboard_pages():
        return [DashboardPage("suppressions", "Suppressions", render_suppressions)]

The page is served at ``/ui/x/<name>`` inside the dashboard's layout, behind its sign-in and
listed in its navigation. ``render`` gets a :class:`PageContext` (kernel, principal, request,
CSRF token) and returns HTML (escape what you did not write with ``ctx.escape``); a page with
``methods=("GET", "POST")`` receives form posts too, after the dashboard checked their CSRF
token. ``admin_only=True`` hides the page from tenant keys (403).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from markupsafe import escape as _escape

from mailproxy_core import MailProxy, PluginError, Principal

PAGE_FUNCTION = "dashboard_pages"


@dataclass(frozen=True, slots=True)
class PageContext:
    """What a page's ``render`` receives."""

    mp: MailProxy
    principal: Principal
    method: str
    form: Mapping[str, str]
    args: Mapping[str, str]
    csrf_token: str

    @staticmethod
    def escape(text: object) -> str:
        """``text`` made safe to put inside HTML."""
        return str(_escape(text))

    def csrf_field(self) -> str:
        """The hidden input every ``<form method="post">`` of the page must carry."""
        return f'<input type="hidden" name="csrf_token" value="{self.escape(self.csrf_token)}">'


@dataclass(frozen=True, slots=True)
class DashboardPage:
    """One extra page: ``name`` (URL segment), ``title`` (navigation), ``render``."""

    name: str
    title: str
    render: Callable[[PageContext], Awaitable[str]]
    admin_only: bool = False
    methods: tuple[str, ...] = field(default=("GET",))


def collect_pages(plugins: Iterable[tuple[str, Any]]) -> dict[str, DashboardPage]:
    """The pages of every plugin that defines ``dashboard_pages``, by name.

    Raises:
        PluginError: a plugin returned something that is not a ``DashboardPage``, a name that is
            not a lowercase slug, or a name another plugin already uses.
    """
    pages: dict[str, DashboardPage] = {}
    owners: dict[str, str] = {}
    for plugin_name, plugin in plugins:
        provide = getattr(plugin, PAGE_FUNCTION, None)
        if not callable(provide):
            continue
        for page in provide() or ():
            if not isinstance(page, DashboardPage):
                raise PluginError(
                    f"plugin {plugin_name!r}: dashboard_pages() returned {page!r}; "
                    "expected DashboardPage objects"
                )
            if not page.name or not all(
                c.isascii() and (c.isalnum() or c in "-_") for c in page.name
            ):
                raise PluginError(
                    f"plugin {plugin_name!r}: dashboard page name {page.name!r} must be letters, "
                    "digits, '-' or '_'"
                )
            if page.name in pages:
                raise PluginError(
                    f"dashboard page {page.name!r} is defined by both {owners[page.name]!r} and "
                    f"{plugin_name!r}; rename one of them"
                )
            pages[page.name] = page
            owners[page.name] = plugin_name
    return pages
