"""Extra dashboard pages from other plugins: the ``mailproxy_dashboard_pages`` hook.

The dashboard adds this hook specification to the plugin manager (``pm.add_hookspecs``) when it
starts. A plugin implements it like any other hook, marked ``optionalhook=True`` so that it
still loads where the dashboard is not installed (the hook is then never called), and imports
the dashboard only inside the implementation::

    from mailproxy_core import hookimpl

    @hookimpl(optionalhook=True)
    def mailproxy_dashboard_pages():
        from mailproxy_dashboard import DashboardPage

        from .dashboard import render_suppressions

        return [DashboardPage("suppressions", "Suppressions", render_suppressions,
                              requires=("suppressions", "list"))]

The page is served at ``/ui/x/<name>`` inside the dashboard's layout, behind its sign-in and
listed in its navigation. ``render`` gets a :class:`PageContext` and returns HTML;
``ctx.call(entity, method, ...)`` acts through the plugin's own API endpoint methods with the
signed-in user's rights, ``ctx.render(template, ...)`` renders an autoescaped Jinja template.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib.resources import files
from typing import TYPE_CHECKING, Any

import pluggy
from markupsafe import escape as _escape
from quart import render_template_string

from mailproxy_core import MailProxy, MailproxyError, PluginError, Principal

if TYPE_CHECKING:
    from .kernel_calls import Caller

HOOK_NAME = "mailproxy_dashboard_pages"

hookspec = pluggy.HookspecMarker("mailproxy")


class DashboardHookSpecs:
    """The hook the dashboard adds to the plugin manager."""

    @hookspec
    def mailproxy_dashboard_pages(self) -> Iterable[DashboardPage]:  # type: ignore[empty-body]
        """Add pages to the web dashboard.

        When: once, when the dashboard starts (only if the dashboard is installed). Arguments:
        none. Returns: ``DashboardPage`` objects. Sync only. Mark the implementation
        ``@hookimpl(optionalhook=True)`` and import ``mailproxy_dashboard`` inside it, so the
        plugin still loads without the dashboard. A page name used twice stops the start with
        an error naming both plugins.
        """


def add_hookspecs(pm: pluggy.PluginManager) -> None:
    """Add :class:`DashboardHookSpecs` to ``pm`` (once; existing implementations are checked
    against it, so a wrong argument name is a startup error)."""
    caller = getattr(pm.hook, HOOK_NAME, None)
    if caller is not None and caller.spec is not None:
        return
    try:
        pm.add_hookspecs(DashboardHookSpecs)
    except pluggy.PluginValidationError as err:
        name = pm.get_name(err.plugin) or repr(err.plugin)
        raise PluginError(f"plugin {name!r}: {err}") from err


@dataclass(frozen=True, slots=True)
class PageContext:
    """What a page's ``render`` receives.

    Attributes:
        mp: the kernel.
        principal: who is signed in (the admin, or one tenant): scope what you show to it, or
            better, read through ``call`` which scopes like the API.
        method: ``"GET"`` or ``"POST"``.
        form: the posted fields (CSRF token already checked), empty for ``GET``.
        args: the query string.
        csrf_token: the session's CSRF token (``csrf_field()`` puts it in a form).
        caller: the signed-in user's API access (``call``, ``permits``).
    """

    mp: MailProxy
    principal: Principal
    method: str
    form: Mapping[str, str]
    args: Mapping[str, str]
    csrf_token: str
    caller: Caller

    @staticmethod
    def escape(text: object) -> str:
        """``text`` made safe to put inside HTML."""
        return str(_escape(text))

    def csrf_field(self) -> str:
        """The hidden input every ``<form method="post">`` of the page must carry."""
        return f'<input type="hidden" name="csrf_token" value="{self.escape(self.csrf_token)}">'

    async def call(self, entity: str, method: str, **values: Any) -> Any:
        """Call the API endpoint method ``entity/method`` as the signed-in user: tenant
        scoping, ``@admin_only`` and API-key scopes apply as for the REST call (403 otherwise).
        """
        return await self.caller.call(entity, method, **values)

    async def permits(self, entity: str, method: str) -> bool:
        """Whether the signed-in user may call ``entity/method`` (show a button only then)."""
        return await self.caller.permits(entity, method)

    async def tenant_choice(self) -> tuple[str | None, list[str]]:
        """The tenant a page shows, and the tenants the user may pick from.

        A tenant key gets its own tenant only. The admin gets every tenant (``tenants/list``)
        and the one named by the ``tenant_id`` field of the form or query string, else the
        first; ``None`` when there is no tenant yet.
        """
        if not self.principal.is_admin:
            own = self.principal.tenant_id
            return own, [] if own is None else [own]
        ids = [str(row["id"]) for row in await self.call("tenants", "list")]
        wanted = self.form.get("tenant_id") or self.args.get("tenant_id")
        if wanted in ids:
            return wanted, ids
        return (ids[0] if ids else None), ids

    async def attempt(self, action: Callable[[], Awaitable[str]]) -> tuple[str, str]:
        """Run a form's ``action``: ``(note, "")`` with the note it returns, or ``("", error)``
        with the text of the ``MailproxyError`` it raised (a bad address, a duplicate name).
        A refusal of the user itself (401/403) is not caught: the dashboard answers it."""
        try:
            return await action(), ""
        except MailproxyError as failure:
            if getattr(failure, "status", 400) in (401, 403):
                raise
            return "", str(failure)

    async def render_package(self, package: str, name: str, **values: Any) -> str:
        """:meth:`render` the template ``templates/<name>`` shipped in ``package`` (a plugin
        ships its pages' templates as package data; pass its ``__package__``)."""
        source = (files(package) / "templates" / name).read_text(encoding="utf-8")
        return await self.render(source, **values)

    async def render(self, source: str, **values: Any) -> str:
        """Render the Jinja template ``source`` (autoescaped) with ``values``, plus ``ctx``
        (this context) and ``csrf_field`` (the hidden CSRF input, already safe)."""
        from markupsafe import Markup

        return await render_template_string(
            source, ctx=self, csrf_field=Markup(self.csrf_field()), **values
        )


@dataclass(frozen=True, slots=True)
class DashboardPage:
    """One extra page.

    Attributes:
        name: the URL segment (``/ui/x/<name>``): letters, digits, ``-``, ``_``.
        title: its navigation entry and heading.
        render: ``async (PageContext) -> str`` returning the page's HTML.
        admin_only: hidden from tenant keys, 403 if they ask for it.
        methods: ``("GET",)``, or ``("GET", "POST")`` for a page with forms.
        requires: the API route ``(entity, method)`` the page reads through; the page is
            listed and served only to users who may call it (a scope-limited API key without
            it gets no link and a 403), exactly as the API would answer them.
    """

    name: str
    title: str
    render: Callable[[PageContext], Awaitable[str]]
    admin_only: bool = False
    methods: tuple[str, ...] = field(default=("GET",))
    requires: tuple[str, str] | None = None


def collect_pages(pm: pluggy.PluginManager) -> dict[str, DashboardPage]:
    """The pages every implementation of ``mailproxy_dashboard_pages`` returns, by name.

    Raises:
        PluginError: a plugin returned something that is not a ``DashboardPage``, a name that is
            not a slug, or a name another plugin already uses.
    """
    add_hookspecs(pm)
    pages: dict[str, DashboardPage] = {}
    owners: dict[str, str] = {}
    implementations = getattr(pm.hook, HOOK_NAME).get_hookimpls()
    for impl in sorted(implementations, key=lambda item: item.plugin_name):
        plugin_name = impl.plugin_name
        for page in impl.function() or ():
            if not isinstance(page, DashboardPage):
                raise PluginError(
                    f"plugin {plugin_name!r}: {HOOK_NAME}() returned {page!r}; "
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
