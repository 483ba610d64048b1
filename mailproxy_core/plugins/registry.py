"""Collects what the registration hooks return, by name, rejecting duplicates (conda's rule)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from ..errors import PluginError
from ..specs import (
    AttachmentFetcherSpec,
    AuthBackendSpec,
    BackgroundTaskSpec,
    EndpointSpec,
    MigrationSpec,
    ReceiptHandlerSpec,
    ReporterSpec,
    RouteSpec,
    SendGuardSpec,
    SettingsSpec,
    StorageBackendSpec,
    TransportSpec,
    ViewExtensionSpec,
)
from .calls import HookCalls

S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class Registered(Generic[S]):
    """A spec together with the plugin that registered it."""

    plugin: str
    spec: S


@dataclass(slots=True)
class SpecTable(Generic[S]):
    """Specs of one kind keyed by name; a second registration of a name is an error."""

    kind: str
    spec_type: type[S]
    entries: dict[str, Registered[S]] = field(default_factory=dict)

    def add(self, plugin: str, spec: Any) -> None:
        if not isinstance(spec, self.spec_type):
            raise PluginError(
                f"plugin {plugin!r} registered {spec!r} as a {self.kind}; expected a "
                f"{self.spec_type.__name__}"
            )
        name = spec.name  # type: ignore[attr-defined]
        existing = self.entries.get(name)
        if existing is not None:
            raise PluginError(
                f"{self.kind} {name!r} is registered by both plugin {existing.plugin!r} and "
                f"plugin {plugin!r}; disable one of them (MAILPROXY_DISABLED_PLUGINS)"
            )
        self.entries[name] = Registered(plugin, spec)

    def __getitem__(self, name: str) -> S:
        return self.entries[name].spec

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def __iter__(self) -> Iterator[S]:
        return (entry.spec for entry in self.entries.values())

    def __len__(self) -> int:
        return len(self.entries)

    def names(self) -> list[str]:
        return list(self.entries)

    def plugin_of(self, name: str) -> str:
        return self.entries[name].plugin


class Registry:
    """Everything the plugins registered, built once per app from the registration hooks."""

    def __init__(self) -> None:
        self.settings = SpecTable("settings section", SettingsSpec)
        self.transports = SpecTable("transport", TransportSpec)
        self.storage_backends = SpecTable("storage backend", StorageBackendSpec)
        self.attachment_fetchers = SpecTable("attachment fetcher", AttachmentFetcherSpec)
        self.auth_backends = SpecTable("auth backend", AuthBackendSpec)
        self.reporters = SpecTable("reporter", ReporterSpec)
        self.receipt_handlers = SpecTable("receipt handler", ReceiptHandlerSpec)
        self.routes = SpecTable("route blueprint", RouteSpec)
        self.migrations = SpecTable("migration", MigrationSpec)
        self.background_tasks = SpecTable("background task", BackgroundTaskSpec)
        self.send_guards = SpecTable("send guard", SendGuardSpec)
        self.view_extensions = SpecTable("view extension", ViewExtensionSpec)
        # Endpoint specs may share an entity; duplicate *methods* are rejected by the API builder.
        self.endpoints: list[Registered[EndpointSpec]] = []

    @classmethod
    def collect(cls, calls: HookCalls) -> Registry:
        """Call every registration hook once and file the results."""
        registry = cls()
        tables: dict[str, SpecTable[Any]] = {
            "mailproxy_register_settings": registry.settings,
            "mailproxy_register_transports": registry.transports,
            "mailproxy_register_storage_backends": registry.storage_backends,
            "mailproxy_register_attachment_fetchers": registry.attachment_fetchers,
            "mailproxy_register_auth_backends": registry.auth_backends,
            "mailproxy_register_reporters": registry.reporters,
            "mailproxy_register_receipt_handlers": registry.receipt_handlers,
            "mailproxy_register_routes": registry.routes,
            "mailproxy_register_migrations": registry.migrations,
            "mailproxy_register_background_tasks": registry.background_tasks,
            "mailproxy_register_send_guards": registry.send_guards,
            "mailproxy_register_view_extensions": registry.view_extensions,
        }
        for hook_name, table in tables.items():
            for plugin, spec in calls.registrations(hook_name):
                table.add(plugin, spec)
        registry._check_url_schemes()
        for plugin, spec in calls.registrations("mailproxy_register_endpoints"):
            if not isinstance(spec, EndpointSpec):
                raise PluginError(
                    f"plugin {plugin!r} registered {spec!r} as an endpoint; "
                    "expected an EndpointSpec"
                )
            registry.endpoints.append(Registered(plugin, spec))
        return registry

    def _check_url_schemes(self) -> None:
        """A storage URL scheme may be claimed by one backend only; ``file`` is the kernel's."""
        owners: dict[str, str] = {}
        table = self.storage_backends
        for name in table.names():
            for scheme in table[name].url_schemes:
                key = scheme.lower()
                if key == "file" or not key.isascii() or not key.replace("+", "").isalnum():
                    raise PluginError(
                        f"plugin {table.plugin_of(name)!r}: storage backend {name!r} cannot "
                        f"claim the URL scheme {scheme!r}"
                    )
                if key in owners and owners[key] != name:
                    raise PluginError(
                        f"storage URL scheme {key!r} is claimed by both storage backend "
                        f"{owners[key]!r} (plugin {table.plugin_of(owners[key])!r}) and "
                        f"{name!r} (plugin {table.plugin_of(name)!r})"
                    )
                owners[key] = name
