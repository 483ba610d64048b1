"""The pluggy plugin manager of one app (docs/architecture.md).

Built inside ``create_app()`` (never at import time): built-in plugins first, then the discovered
ones, each under its one name. Validation happens here so that a broken plugin is a startup error
that names the plugin and the hook, instead of a surprise at the first message.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable

import pluggy

from ..errors import PluginError
from . import hookspecs
from .hookspecs import ENTITY_HOOKS, EVENT_HOOKS
from .markers import PROJECT


def _impl_is_async(function: object) -> bool:
    return inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function)


def build_plugin_manager(plugins: Iterable[tuple[str, object]]) -> pluggy.PluginManager:
    """Register ``(name, plugin)`` pairs and validate them.

    Raises ``PluginError`` when a plugin implements an unknown hook (a typo such as
    ``mailproxy_register_transport``), uses argument names the hook does not have, or implements a
    non-event, non-entity hook with ``async def``.
    """
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    for name, plugin in plugins:
        try:
            pm.register(plugin, name=name)
        except pluggy.PluginValidationError as err:
            raise PluginError(f"plugin {name!r}: {err}") from err
        except ValueError as err:
            raise PluginError(f"plugin {name!r} could not be registered: {err}") from err
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as err:
        plugin_name = pm.get_name(err.plugin) or repr(err.plugin)
        raise PluginError(
            f"plugin {plugin_name!r} implements an unknown hook: {err}. "
            "Check the spelling against docs/hooks.md."
        ) from err
    _reject_async_non_event_hooks(pm)
    return pm


def _reject_async_non_event_hooks(pm: pluggy.PluginManager) -> None:
    for hook_name in hookspecs.ALL_HOOKS:
        if hook_name in EVENT_HOOKS or hook_name in ENTITY_HOOKS:
            continue
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            if _impl_is_async(impl.function):
                raise PluginError(
                    f"plugin {impl.plugin_name!r} implements {hook_name} with 'async def'; only "
                    "event and entity hooks may be async. Return a spec object whose methods are "
                    "async instead (see docs/hooks.md)."
                )


def hooks_of(pm: pluggy.PluginManager, name: str) -> list[str]:
    """Names of the hooks that plugin ``name`` implements."""
    plugin = pm.get_plugin(name)
    if plugin is None:
        return []
    return sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])
