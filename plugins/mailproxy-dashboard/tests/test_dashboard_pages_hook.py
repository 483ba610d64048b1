"""The ``mailproxy_dashboard_pages`` hook: extra pages from any plugin, added like a third party."""

from __future__ import annotations

from typing import Any

import pluggy
import pytest

from mailproxy_core import PluginError, hookimpl
from mailproxy_core.plugins.manager import build_plugin_manager
from mailproxy_core.testing.client import ApiClient
from mailproxy_dashboard import DashboardPage, PageContext
from mailproxy_dashboard.pages import collect_pages


class NotesPlugin:
    """A third-party plugin with a page listing notes and a form adding one."""

    def __init__(self) -> None:
        self.notes: list[tuple[str | None, str]] = []

    @hookimpl
    def mailproxy_register_settings(self) -> list[Any]:
        return []

    @hookimpl(optionalhook=True)
    def mailproxy_dashboard_pages(self) -> list[DashboardPage]:
        async def notes(ctx: PageContext) -> str:
            if ctx.method == "POST":
                self.notes.append((ctx.principal.tenant_id, ctx.form["text"]))
            visible = [
                text
                for owner, text in self.notes
                if ctx.principal.is_admin or owner == ctx.principal.tenant_id
            ]
            items = "".join(f"<li>{ctx.escape(text)}</li>" for text in visible)
            return (
                f"<ul id='notes'>{items}</ul><form method='post'>{ctx.csrf_field()}"
                "<input name='text'><button>Add</button></form>"
            )

        async def secret(ctx: PageContext) -> str:
            return "<p>for the admin</p>"

        return [
            DashboardPage("notes", "Notes", notes, methods=("GET", "POST")),
            DashboardPage("admin-only", "Admin page", secret, admin_only=True),
        ]


@pytest.fixture
def notes(register_plugin: Any) -> NotesPlugin:
    return register_plugin(NotesPlugin(), "notes")  # type: ignore[no-any-return]


async def test_extra_page_is_listed_served_and_takes_csrf_checked_posts(
    notes: NotesPlugin, signed_in: Any, admin_token: str, mp_client: ApiClient
) -> None:
    client = await signed_in(admin_token)
    _status, html = await client.get("/ui/")
    assert 'href="/ui/x/notes"' in html and 'href="/ui/x/admin-only"' in html
    response = await client.post("/ui/x/notes", text="<b>hello</b>")
    assert response.status_code == 200
    assert "<li>&lt;b&gt;hello&lt;/b&gt;</li>" in await response.get_data(as_text=True)
    refused = await client.post("/ui/x/notes", csrf="forged", text="sneaky")
    assert refused.status_code == 403
    assert [text for _, text in notes.notes] == ["<b>hello</b>"]
    assert (await client.get("/ui/x/missing"))[0] == 404


async def test_extra_page_sees_the_principal_and_admin_only_pages_are_hidden(
    notes: NotesPlugin, signed_in: Any, mp_client: ApiClient
) -> None:
    notes.notes.append(("globex", "globex note"))
    client = await signed_in("tenant-token:acme")
    status, html = await client.get("/ui/x/notes")
    assert status == 200 and "globex note" not in html
    assert 'href="/ui/x/admin-only"' not in html
    assert (await client.get("/ui/x/admin-only"))[0] == 403


async def test_extra_pages_need_a_session(notes: NotesPlugin, ui: Any) -> None:
    response = await ui().client.get("/ui/x/notes")
    assert response.status_code == 302


def _manager(*plugins: tuple[str, object]) -> pluggy.PluginManager:
    """A plugin manager built the way the kernel builds it (without the dashboard's spec)."""
    return build_plugin_manager(plugins)


def test_a_plugin_with_pages_loads_where_the_dashboard_is_not_installed() -> None:
    # optionalhook: the kernel's check for unknown hooks accepts it without the dashboard.
    pm = _manager(("notes", NotesPlugin()))
    assert pm.hook.mailproxy_dashboard_pages.spec is None
    pages = collect_pages(pm)  # the dashboard adds its spec, then asks
    assert pm.hook.mailproxy_dashboard_pages.spec is not None
    assert sorted(pages) == ["admin-only", "notes"]
    assert collect_pages(pm).keys() == pages.keys()  # adding the spec twice is harmless


def test_bad_registrations_name_the_plugin() -> None:
    async def render(ctx: PageContext) -> str:
        return ""

    class Twice:
        @hookimpl(optionalhook=True)
        def mailproxy_dashboard_pages(self) -> list[DashboardPage]:
            return [DashboardPage("a", "A", render)]

    with pytest.raises(PluginError, match="defined by both 'one' and 'two'"):
        collect_pages(_manager(("one", Twice()), ("two", Twice())))

    class BadName:
        @hookimpl(optionalhook=True)
        def mailproxy_dashboard_pages(self) -> list[DashboardPage]:
            return [DashboardPage("a/b", "A", render)]

    with pytest.raises(PluginError, match=r"'bad'.*must be letters"):
        collect_pages(_manager(("bad", BadName())))

    class NotAPage:
        @hookimpl(optionalhook=True)
        def mailproxy_dashboard_pages(self) -> list[object]:
            return ["page"]

    with pytest.raises(PluginError, match="expected DashboardPage"):
        collect_pages(_manager(("odd", NotAPage())))

    class WrongArgument:
        @hookimpl(optionalhook=True)
        def mailproxy_dashboard_pages(self, principal: object) -> list[DashboardPage]:
            return []

    with pytest.raises(PluginError, match=r"(?s)'wrong'.*principal"):
        collect_pages(_manager(("wrong", WrongArgument())))
