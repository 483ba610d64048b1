"""Documentation that must match the code."""

from __future__ import annotations

import inspect
from pathlib import Path

from mailproxy_core.plugins import hookdoc, hookspecs

ROOT = Path(__file__).resolve().parent.parent


def test_every_hook_has_a_docstring_with_an_example():
    for name in hookspecs.ALL_HOOKS:
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        assert "When:" in doc, name
        assert "Example::" in doc, name


def test_every_hookspec_is_listed_in_a_kind():
    declared = {name for name in dir(hookspecs) if name.startswith("mailproxy_")}
    assert declared == set(hookspecs.ALL_HOOKS)


def test_hooks_md_is_generated_from_the_specs():
    current = (ROOT / "docs" / "hooks.md").read_text()
    assert current == hookdoc.render(), (
        "docs/hooks.md is stale: run `python -m mailproxy_core.plugins.hookdoc > docs/hooks.md`"
    )
    for name in hookspecs.ALL_HOOKS:
        assert f"### `{name}`" in current


def test_architecture_and_plugin_guides_exist():
    for page in ("architecture.md", "plugins.md", "hooks.md", "configuration.md"):
        assert (ROOT / "docs" / page).is_file(), page


def test_every_setting_is_documented():
    from mailproxy_core.settings import Settings

    page = (ROOT / "docs" / "configuration.md").read_text()
    missing = [
        name
        for name in Settings.model_fields
        if name != "plugin_sections" and f"`MAILPROXY_{name.upper()}`" not in page
    ]
    assert missing == []


def test_every_public_name_is_listed_in_the_plugin_guide():
    import mailproxy_core

    page = (ROOT / "docs" / "plugins.md").read_text()
    assert [name for name in mailproxy_core.__all__ if f"`{name}`" not in page] == []
