"""Per-kernel state of the plugin: its settings and its link signer.

Kept in a ``WeakKeyDictionary`` keyed by the kernel, so two apps in one process are independent
and the state goes away with its kernel.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from weakref import WeakKeyDictionary

from mailproxy_core import MailProxy

from .links import LinkSigner
from .settings import SETTINGS_SECTION, StorageLocalSettings


@dataclass
class PluginState:
    """What the plugin keeps for one kernel."""

    settings: StorageLocalSettings
    signer: LinkSigner
    allowed_roots: tuple[str, ...] = field(default=())
    """``allowed_roots`` as real paths."""


_STATES: WeakKeyDictionary[MailProxy, PluginState] = WeakKeyDictionary()


def state_of(mp: MailProxy) -> PluginState:
    """The plugin's state for ``mp``, created on first use."""
    state = _STATES.get(mp)
    if state is None:
        settings = mp.plugin_settings(SETTINGS_SECTION)
        assert isinstance(settings, StorageLocalSettings)
        secret = settings.link_secret.get_secret_value() if settings.link_secret else None
        roots = tuple(os.path.realpath(root.expanduser()) for root in settings.allowed_roots)
        state = PluginState(settings, LinkSigner.for_kernel(mp, secret), roots)
        _STATES[mp] = state
    return state
