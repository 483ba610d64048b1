"""Discovery, isolation, validation and registration of plugins."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mailproxy_core import PluginError, Settings, TransportSpec, hookimpl
from mailproxy_core.app import create_app, kernel_of
from mailproxy_core.kernel import build_kernel

GOOD = """
from mailproxy_core import hookimpl, TransportSpec
from mailproxy_core.builtin.null_transport import NullTransport

@hookimpl
def mailproxy_register_transports():
    return [TransportSpec("good-transport", NullTransport)]
"""


def settings(tmp_path: Path, **values: object) -> Settings:
    return Settings.from_values(db=str(tmp_path / "mp.db"), api_token="t", **values)


def infos(tmp_path: Path, **values: object) -> dict[str, dict[str, object]]:
    mp = build_kernel(settings(tmp_path, **values))
    return {info.name: info.as_dict() for info in mp.plugins}


def test_broken_plugin_is_isolated_and_reported(tmp_path, install_fake_plugin):
    install_fake_plugin("goodone", GOOD)
    install_fake_plugin("broken", "raise RuntimeError('database driver missing')\n")
    mp = build_kernel(settings(tmp_path))
    found = {info.name: info for info in mp.plugins}
    assert found["broken"].status == "failed"
    assert "RuntimeError: database driver missing" in (found["broken"].load_error or "")
    assert found["broken"].distribution == "fake-broken"
    assert found["goodone"].status == "loaded"
    assert found["goodone"].version == "0.3.1"
    assert "good-transport" in mp.registry.transports


def test_required_plugin_that_fails_stops_startup(tmp_path, install_fake_plugin):
    install_fake_plugin("broken", "raise ImportError('nope')\n")
    with pytest.raises(PluginError, match="required plugin 'broken' could not be loaded"):
        build_kernel(settings(tmp_path, required_plugins=("broken",)))


def test_required_plugin_missing_stops_startup(tmp_path):
    with pytest.raises(PluginError, match="required plugin 'ghost' is not installed"):
        build_kernel(settings(tmp_path, required_plugins=("ghost",)))


def test_denied_plugin_is_never_imported(tmp_path, install_fake_plugin):
    module = install_fake_plugin("secret", "raise SystemExit('imported!')\n")
    found = infos(tmp_path, disabled_plugins=("secret",))
    assert found["secret"]["status"] == "disabled"
    assert module not in sys.modules


def test_allow_list_imports_only_listed_plugins(tmp_path, install_fake_plugin):
    skipped = install_fake_plugin("other", "raise SystemExit('imported!')\n")
    install_fake_plugin("goodone", GOOD)
    found = infos(tmp_path, plugins=("goodone",))
    assert found["goodone"]["status"] == "loaded"
    assert found["other"]["status"] == "disabled"
    assert skipped not in sys.modules
    # Built-ins outside the allow-list are disabled too, except the essential ones.
    assert found["file"]["status"] == "disabled"
    assert found["core"]["status"] == "loaded"


def test_builtins_are_listed_with_the_core_version(tmp_path):
    found = infos(tmp_path)
    for name in ("core", "defaults", "file", "null", "base64"):
        assert found[name]["status"] == "loaded"
        assert found[name]["distribution"] == "mailproxy-core"
        assert found[name]["version"]
    assert "mailproxy_register_transports" in found["file"]["hooks"]


def test_entry_point_using_a_builtin_name_is_refused(tmp_path, install_fake_plugin):
    module = install_fake_plugin("null", GOOD)
    found = infos(tmp_path)
    assert found["null"]["distribution"] == "mailproxy-core"
    assert module not in sys.modules


def test_misspelled_hook_is_a_startup_error(tmp_path, install_fake_plugin):
    install_fake_plugin(
        "typo",
        """
        from mailproxy_core import hookimpl

        @hookimpl
        def mailproxy_register_transport():
            return []
        """,
    )
    with pytest.raises(PluginError) as err:
        build_kernel(settings(tmp_path))
    assert "'typo'" in str(err.value)
    assert "mailproxy_register_transport" in str(err.value)


def test_unknown_argument_name_is_a_startup_error(tmp_path):
    class BadArgs:
        @hookimpl
        def mailproxy_select_transport(self, account, mesage):
            return None

    with pytest.raises(PluginError, match="badargs"):
        build_kernel(settings(tmp_path), extra_plugins={"badargs": BadArgs()})


def test_async_decision_hook_is_a_startup_error(tmp_path):
    class AsyncDecision:
        @hookimpl
        async def mailproxy_classify_error(self, error):
            return None

    with pytest.raises(PluginError) as err:
        build_kernel(settings(tmp_path), extra_plugins={"asyncdecision": AsyncDecision()})
    assert "'asyncdecision'" in str(err.value)
    assert "mailproxy_classify_error" in str(err.value)
    assert "async def" in str(err.value)


def test_async_registration_hook_is_a_startup_error(tmp_path):
    class AsyncRegistration:
        @hookimpl
        async def mailproxy_register_transports(self):
            return []

    with pytest.raises(PluginError, match="mailproxy_register_transports"):
        build_kernel(settings(tmp_path), extra_plugins={"asyncreg": AsyncRegistration()})


def test_duplicate_registered_name_names_both_plugins(tmp_path):
    class Dup:
        @hookimpl
        def mailproxy_register_transports(self):
            return [TransportSpec("file", lambda mp: None)]

    with pytest.raises(PluginError) as err:
        build_kernel(settings(tmp_path), extra_plugins={"dup": Dup()})
    message = str(err.value)
    assert "transport 'file'" in message
    assert "'file'" in message and "'dup'" in message


def test_wrong_spec_type_is_rejected(tmp_path):
    class Wrong:
        @hookimpl
        def mailproxy_register_transports(self):
            return ["smtp"]

    with pytest.raises(PluginError, match="expected a TransportSpec"):
        build_kernel(settings(tmp_path), extra_plugins={"wrong": Wrong()})


def test_registration_hook_that_raises_names_the_plugin(tmp_path):
    class Raising:
        @hookimpl
        def mailproxy_register_reporters(self):
            raise KeyError("boom")

    with pytest.raises(
        PluginError, match="plugin 'raising' failed in mailproxy_register_reporters"
    ):
        build_kernel(settings(tmp_path), extra_plugins={"raising": Raising()})


def test_each_app_has_its_own_plugin_manager(tmp_path):
    class Extra:
        @hookimpl
        def mailproxy_register_transports(self):
            return [TransportSpec("extra", lambda mp: None)]

    first = create_app(settings(tmp_path), extra_plugins={"extra": Extra()})
    second = create_app(settings(tmp_path))
    assert "extra" in kernel_of(first).registry.transports
    assert "extra" not in kernel_of(second).registry.transports
    assert kernel_of(first).hooks.plugin_manager is not kernel_of(second).hooks.plugin_manager
