"""Plugin discovery with stevedore (docs/architecture.md).

Entry points of group ``mailproxy`` are listed without importing anything; the allow-list
(``MAILPROXY_PLUGINS``) and deny-list (``MAILPROXY_DISABLED_PLUGINS``) are applied to the names,
and only the remaining plugins are imported. A plugin that fails to import is recorded with its
error and does not stop the others, unless it is listed in ``required_plugins``.
"""

from __future__ import annotations

import importlib.metadata
import logging
import types
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from stevedore import ExtensionManager, NamedExtensionManager

from ..errors import PluginError
from .markers import ENTRY_POINT_GROUP

log = logging.getLogger(__name__)

PluginStatus = Literal["loaded", "failed", "disabled"]


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """What is known about one plugin, as shown by ``mail-proxy plugins`` and the API."""

    name: str
    distribution: str | None
    version: str | None
    status: PluginStatus
    load_error: str | None = None
    hooks: tuple[str, ...] = ()
    builtin: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The shape of ``GET /instance/plugins`` (docs/api.md)."""
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "hooks": list(self.hooks),
            "status": self.status,
            "load_error": self.load_error,
        }


@dataclass(slots=True)
class Discovery:
    """The outcome of discovery: imported plugin modules and the record of every plugin seen."""

    modules: dict[str, types.ModuleType | object] = field(default_factory=dict)
    infos: dict[str, PluginInfo] = field(default_factory=dict)

    def set_hooks(self, name: str, hooks: Iterable[str]) -> None:
        """Record which hooks plugin ``name`` implements (known once pluggy registered it)."""
        self.infos[name] = replace(self.infos[name], hooks=tuple(sorted(hooks)))


def _distribution_of(ep: importlib.metadata.EntryPoint) -> tuple[str | None, str | None]:
    dist = ep.dist
    if dist is None:
        return None, None
    return dist.metadata["Name"], dist.version


def _describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"


def discover_plugins(
    *,
    allow: Sequence[str] | None = None,
    deny: Sequence[str] = (),
    required: Sequence[str] = (),
    reserved: Iterable[str] = (),
) -> Discovery:
    """Find, filter and import the plugins of entry-point group ``mailproxy``.

    Arguments: ``allow`` — only these names are imported (``None`` = all); ``deny`` — never
    imported; ``required`` — a failure to import one of these raises; ``reserved`` — names taken
    by the kernel's built-in plugins (an entry point using one is recorded as failed).
    Returns: a ``Discovery``. Raises: ``PluginError`` when a required plugin is missing, disabled
    or fails to import.
    """
    discovery = Discovery()
    reserved_names = set(reserved)
    points: dict[str, importlib.metadata.EntryPoint] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        # Two distributions with one plugin name: keep the first, record the clash.
        if ep.name in points:
            other = _distribution_of(points[ep.name])[0]
            dist, version = _distribution_of(ep)
            log.error("plugin name %r is declared by both %s and %s", ep.name, other, dist)
            continue
        points[ep.name] = ep

    wanted: list[str] = []
    for name, ep in sorted(points.items()):
        dist, version = _distribution_of(ep)
        if name in reserved_names:
            discovery.infos[name] = PluginInfo(
                name,
                dist,
                version,
                "failed",
                f"the name {name!r} is reserved for a built-in plugin",
            )
        elif name in deny or (allow is not None and name not in allow):
            discovery.infos[name] = PluginInfo(name, dist, version, "disabled")
        else:
            wanted.append(name)

    # stevedore's cached entry points carry no distribution: take it from importlib.metadata.
    def on_failure(_manager: Any, ep: importlib.metadata.EntryPoint, err: BaseException) -> None:
        dist, version = _distribution_of(points[ep.name])
        log.error("plugin %r failed to import: %s", ep.name, _describe(err), exc_info=err)
        discovery.infos[ep.name] = PluginInfo(ep.name, dist, version, "failed", _describe(err))

    if wanted:
        # stevedore memoises entry points per namespace for the life of the process; each app
        # must see what is installed now (stevedore's own on-disk cache stays in use).
        ExtensionManager.ENTRY_POINT_CACHE.pop(ENTRY_POINT_GROUP, None)
        manager: NamedExtensionManager[Any] = NamedExtensionManager(
            namespace=ENTRY_POINT_GROUP,
            names=wanted,
            invoke_on_load=False,
            on_load_failure_callback=on_failure,
            name_order=True,
        )
        for ext in manager.extensions:
            dist, version = _distribution_of(points[ext.name])
            discovery.modules[ext.name] = ext.plugin
            discovery.infos[ext.name] = PluginInfo(ext.name, dist, version, "loaded")

    for name in required:
        info = discovery.infos.get(name)
        if info is None:
            raise PluginError(
                f"required plugin {name!r} is not installed; install its distribution or remove "
                "it from required_plugins"
            )
        if info.status != "loaded":
            reason = info.load_error or "it is disabled by MAILPROXY_PLUGINS/DISABLED_PLUGINS"
            raise PluginError(f"required plugin {name!r} could not be loaded: {reason}")
    return discovery
