"""Spec objects returned by the registration hooks.

Each registration hook returns an iterable of one of these small frozen dataclasses. The registry
collects them by ``name`` and rejects a name registered twice, naming both plugins. Factories
receive the running ``MailProxy`` kernel so that they can read their plugin's settings, the
database or the shared HTTP client; they are called once per app, at startup.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

if TYPE_CHECKING:
    from quart import Blueprint

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
    """A storage protocol (``local``, ``s3`` ...); the factory receives the mount's config.

    ``url_schemes`` claims URL schemes (``("s3",)`` for ``s3://bucket/prefix``) for a tenant's
    ``large_file_config.storage_url``; such a URL is resolved by ``url_factory(mp, url)``, which
    returns the backend and the path prefix inside it. Without it, only mounts
    (``<mount>:<prefix>``) and ``file:///`` URLs reach the backend. ``url_factory`` raises
    ``ConfigurationError`` naming what is wrong with the URL, without network I/O (it is also
    called to check the URL when a tenant is added or updated).
    """

    name: str
    factory: Callable[[MailProxy, Mapping[str, Any]], StorageBackend]
    url_schemes: tuple[str, ...] = ()
    url_factory: Callable[[MailProxy, str], tuple[StorageBackend, str]] | None = None

    def __post_init__(self) -> None:
        if self.url_schemes and self.url_factory is None:
            raise TypeError(
                f"storage backend {self.name!r} claims URL schemes without a url_factory"
            )


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
    ``endpoint`` is a subclass of ``mailproxy_core.Endpoint`` (checked when the API is built;
    typed loosely here so that values and specs never depend on the API layer).
    """

    entity: str
    endpoint: type

    @property
    def name(self) -> str:
        return self.entity


@dataclass(frozen=True, slots=True)
class RouteSpec:
    """A raw Quart blueprint for routes outside ``/{entity}/{method}`` (``/metrics``).

    ``public_paths`` lists the paths that answer without credentials; one ending in ``/`` is a
    prefix (``"/download/"`` makes every path under it public). ``in_openapi=False`` keeps the
    blueprint's routes out of the OpenAPI document (web pages, not API operations).
    """

    name: str
    blueprint: Blueprint
    public_paths: tuple[str, ...] = ()
    in_openapi: bool = True


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


ViewEntity = Literal["tenants", "accounts"]
"""The entities whose API objects plugins may extend."""

VIEW_ENTITIES: tuple[str, ...] = ("tenants", "accounts")


@dataclass(frozen=True, slots=True)
class ViewExtensionSpec:
    """Extra fields on the API objects of one entity (``tenants`` or ``accounts``).

    ``extend(mp, views)`` gets every object of one response at once (a list of one for ``get``,
    ``add`` and ``update``, the whole page for ``list``) and returns one mapping of extra fields
    per object, in the same order. Extra fields never replace the kernel's own fields.
    """

    name: str
    entity: ViewEntity
    extend: Callable[
        [MailProxy, Sequence[Mapping[str, Any]]], Awaitable[Sequence[Mapping[str, Any]]]
    ]

    def __post_init__(self) -> None:
        if self.entity not in VIEW_ENTITIES:
            raise TypeError(
                f"view extension {self.name!r}: entity must be one of "
                f"{', '.join(VIEW_ENTITIES)}, not {self.entity!r}"
            )
