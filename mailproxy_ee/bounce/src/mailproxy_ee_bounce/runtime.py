"""What every process of one app keeps in memory: the return path, refreshed from the database.

The ``mailproxy_envelope_sender`` hook is synchronous and is called for every message, so it
cannot read the database; it reads ``BounceRuntime.return_path`` instead. The value is loaded at
startup, at once after ``set_bounce_config`` in the process that served it, and every
``config_refresh`` seconds everywhere (sending workers included).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from mailproxy_core import MailproxyError, OutageLog, PluginError, current_kernel, is_unavailable

from .settings import SECTION, BounceSettings
from .store import BounceStore
from .verp import verp_address

if TYPE_CHECKING:
    from mailproxy_core import MailProxy

log = logging.getLogger(__name__)


class BounceRuntime:
    """The in-memory state of the plugin for one kernel."""

    def __init__(self, mp: MailProxy, settings: BounceSettings) -> None:
        self.mp = mp
        self.settings = settings
        self.store = BounceStore(mp)
        self.return_path: str | None = None
        """The configured return path while the mailbox is enabled, else None."""

    def envelope_sender(self, message_pk: int) -> str | None:
        """The envelope sender of a message without its own return path (VERP when on)."""
        if not self.return_path:
            return None
        if self.settings.verp:
            return verp_address(self.return_path, message_pk)
        return self.return_path

    async def refresh(self) -> None:
        """Read the stored configuration: the return path applies while the mailbox is enabled."""
        config = await self.store.config()
        self.return_path = (config.return_path or None) if config.enabled else None

    async def run_refresh(self) -> None:
        """Background task: refresh every ``config_refresh`` seconds until cancelled.

        A failed refresh keeps the last value and is tried again next round: a database outage
        is logged once (and a reminder a minute, and once when it is back), never ends the task.
        """
        outage = OutageLog(log, effect="the last bounce configuration stays in use")
        while True:
            await asyncio.sleep(self.settings.config_refresh)
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except MailproxyError as exc:
                log.warning("bounce configuration refresh failed: %s", exc)
            except Exception as exc:
                if not is_unavailable(exc):
                    log.exception("bounce configuration refresh failed")
                else:
                    outage.failed(exc)
            else:
                outage.succeeded()


_RUNTIMES: WeakKeyDictionary[MailProxy, BounceRuntime] = WeakKeyDictionary()
_started: list[BounceRuntime] = []


def runtime_for(mp: MailProxy) -> BounceRuntime:
    """The runtime of kernel ``mp`` (created on first use)."""
    runtime = _RUNTIMES.get(mp)
    if runtime is None:
        settings = mp.plugin_settings(SECTION)
        if not isinstance(settings, BounceSettings):
            raise PluginError(f"settings section {SECTION!r} belongs to another plugin")
        runtime = BounceRuntime(mp, settings)
        _RUNTIMES[mp] = runtime
    return runtime


def mark_started(runtime: BounceRuntime) -> None:
    """Remember a running app's runtime (for hooks called without the kernel)."""
    if runtime not in _started:
        _started.append(runtime)


def mark_stopped(runtime: BounceRuntime) -> None:
    """Forget a stopped app's runtime."""
    if runtime in _started:
        _started.remove(runtime)


def active_runtime() -> BounceRuntime | None:
    """The runtime of the app being served: the current app's, else the last started one
    (a process normally runs one app)."""
    try:
        runtime = _RUNTIMES.get(current_kernel())
        if runtime is not None:
            return runtime
    except (RuntimeError, PluginError):  # outside a request/app context
        pass
    return _started[-1] if _started else None
