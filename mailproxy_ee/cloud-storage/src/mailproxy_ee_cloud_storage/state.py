"""Per-kernel state of the plugin: its settings and its pool of cloud clients.

Kept in a ``WeakKeyDictionary`` keyed by the kernel, so two apps in one process are independent
and the state goes away with its kernel.
"""

from __future__ import annotations

from dataclasses import dataclass
from weakref import WeakKeyDictionary

from mailproxy_core import MailProxy

from .clients import ClientPool
from .settings import SETTINGS_SECTION, CloudStorageSettings


@dataclass
class PluginState:
    """What the plugin keeps for one kernel."""

    settings: CloudStorageSettings
    pool: ClientPool


_STATES: WeakKeyDictionary[MailProxy, PluginState] = WeakKeyDictionary()


def state_of(mp: MailProxy) -> PluginState:
    """The plugin's state for ``mp``, created on first use."""
    state = _STATES.get(mp)
    if state is None:
        settings = mp.plugin_settings(SETTINGS_SECTION)
        assert isinstance(settings, CloudStorageSettings)
        state = PluginState(settings, ClientPool(settings))
        _STATES[mp] = state
    return state


def forget(mp: MailProxy) -> PluginState | None:
    """Drop the state of ``mp`` (shutdown); returns it so its clients can be closed."""
    return _STATES.pop(mp, None)
