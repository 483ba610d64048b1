"""Spec objects returned by the registration hooks.

Each registration hook returns an iterable of one of these small frozen dataclasses. The registry
collects them by ``name`` and rejects a name registered twice, naming both plugins. Factories
receive the running ``MailProxy`` kernel so that they can read their plugin's settings, the
database or the shared HTTP client; they are called once per app, at startup.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:
    from quart import Blueprint

    from .api.endpoint import Endpoint
    from .kernel import MailProxy
    from .protocols import (
        AttachmentFetcher,
        AuthBackend,
        MigrationContext,
        ReceiptHandler,
        Reporter,
        SendGuard,
        StorageBackend,
        Transport,
    )


@dataclass(frozen=True, slots=True)
class SettingsSpec:
    """A plugin's settings model, validated from ``[plugins.<name>]`` and ``MAILPROXY_<NAME>__*``.

    ``name`` is the settings section; by convention the plugin's own name.
    """

    name: str
    model: type[BaseModel]


@dataclass(frozen=True, slots=True)
class TransportSpec:
    """A transport, chosen per account by its ``transport`` field (e.g. ``smtp``, ``file``)."""

    name: str
    factory: Callable[[MailProxy], Transport]


@dataclass(frozen=True, slots=True)
class StorageBackendSpec:
    """A storage protocol (``local``, ``s3`` ...); the factory receives the mount's config."""

    name: str
    factory: Callable[[MailProxy, Mapping[str, Any]], StorageBackend]


@dataclass(frozen=True, slots=True)
class AttachmentFetcherSpec:
    """An attachment fetch mode (``base64``, ``http_url``, ``endpoint`` ...)."""

    name: str
    factory: Callable[[MailProxy], AttachmentFetcher]


@dataclass(frozen=True, slots=True)
class AuthBackendSpec:
    """An authentication backend; the chain asks backends in ascending ``order``."""

    name: str
    factory: Callable[[MailProxy], AuthBackend]
    order: int = 100


@dataclass(frozen=True, slots=True)
class ReporterSpec:
    """A delivery reporter; tenants pick one by name in their ``reporter`` field."""

    name: str
    factory: Callable[[MailProxy], Reporter]


@dataclass(frozen=True, slots=True)
class ReceiptHandlerSpec:
    """A receipt source (bounce mailbox, PEC mailboxes) polled by the kernel's receipt loop.

    ``factory(mp)`` builds the handler once, at startup of a ``serve`` process. The loop polls
    it every ``handler.poll_interval`` seconds; ``interval`` is only the fallback for a handler
    without that attribute. ``name`` names the handler's lease and status
    (``MailProxy.receipt_handler_status``).
    """

    name: str
    factory: Callable[[MailProxy], ReceiptHandler]
    interval: float = 60.0


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    """An API entity (``tenants``, ``messages`` ...) or extra methods on an existing one.

    Several specs may share an ``entity``; each method name may be registered only once.
    """

    entity: str
    endpoint: type[Endpoint]

    @property
    def name(self) -> str:
        return self.entity


@dataclass(frozen=True, slots=True)
class RouteSpec:
    """A raw Quart blueprint for routes outside ``/{entity}/{method}`` (``/metrics``).

    ``public_paths`` lists the paths that answer without credentials; one ending in ``/`` is a
    prefix (``"/download/"`` makes every path under it public).
    """

    name: str
    blueprint: Blueprint
    public_paths: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MigrationSpec:
    """One versioned schema step of a component (``core`` or a plugin name).

    Steps of a component apply in ``version`` order, each in its own transaction, and are
    recorded in ``schema_migrations``; a recorded step is never applied again.
    """

    component: str
    version: int
    description: str
    upgrade: Callable[[MigrationContext], Awaitable[None]]

    @property
    def name(self) -> str:
        return f"{self.component}:{self.version}"


@dataclass(frozen=True, slots=True)
class BackgroundTaskSpec:
    """A long-running coroutine started with the service and cancelled on shutdown.

    ``dispatch_only`` tasks also run in ``mail-proxy worker`` processes.
    """

    name: str
    run: Callable[[MailProxy], Awaitable[None]]
    dispatch_only: bool = False


@dataclass(frozen=True, slots=True)
class SendGuardSpec:
    """A send guard consulted before each send."""

    name: str
    factory: Callable[[MailProxy], SendGuard]
