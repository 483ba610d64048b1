"""The ``MailProxy`` kernel object: what hooks and plugin objects are handed.

``build_kernel(settings)`` does everything that needs no event loop: discover and import plugins,
build the plugin manager, collect the registry, validate every plugin's settings. ``start()``
connects the database, applies migrations, builds the plugin objects and starts the background
tasks; ``stop()`` undoes it in reverse order. One kernel per app; nothing here is global.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.metadata
import inspect
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, cast

import httpx
from pydantic import BaseModel

from .api.auth import AuthChain
from .crypto import SecretBox, secret_box_from_settings
from .db.engine import Database
from .db.migrate import apply_migrations
from .db.notifications import DISPATCH_CHANNEL, RECEIPT_CHANNEL
from .db.plugin_data import PluginData
from .db.repos import Repos
from .errors import ConfigurationError, NotFound, PluginError
from .message_ids import message_id_of
from .models import (
    Account,
    Message,
    PoolState,
    RateUsage,
    Receipt,
    ReceiptHandlerStatus,
    ReceiptResult,
    SentMessage,
    StorageMount,
    Tenant,
)
from .plugins.calls import HookCalls
from .plugins.loader import Discovery, PluginInfo, discover_plugins
from .plugins.manager import build_plugin_manager, hooks_of
from .plugins.registry import Registry
from .protocols import AttachmentFetcher, Reporter, SendGuard, StorageBackend, Transport
from .settings import Settings

log = logging.getLogger(__name__)

Role = Literal["serve", "worker", "local"]

BUILTIN_PLUGINS: tuple[tuple[str, str], ...] = (
    ("core", "mailproxy_core.builtin.core"),
    ("defaults", "mailproxy_core.builtin.defaults"),
    ("file", "mailproxy_core.builtin.file_transport"),
    ("null", "mailproxy_core.builtin.null_transport"),
    ("base64", "mailproxy_core.builtin.base64_fetcher"),
    ("none_reporter", "mailproxy_core.builtin.none_reporter"),
    ("outcome_log", "mailproxy_core.builtin.outcome_log"),
)
"""Plugins shipped inside the kernel, registered through the same path as any other."""


ESSENTIAL_BUILTINS = frozenset({"core", "defaults"})
"""Built-ins that cannot be disabled: without them there is no schema and no API."""


APP_KEY = "mailproxy"
"""Where ``create_app`` keeps the kernel: ``app.extensions[APP_KEY]``."""


def current_kernel() -> MailProxy:
    """The kernel of the app serving the current request (for plugin blueprints' views)."""
    from quart import current_app

    mp = current_app.extensions.get(APP_KEY)
    if not isinstance(mp, MailProxy):
        raise PluginError("this app was not built by mailproxy_core.app.create_app")
    return mp


def core_version() -> str:
    """The installed version of ``mailproxy-core``."""
    try:
        return importlib.metadata.version("mailproxy-core")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def _load_builtins(settings: Settings, discovery: Discovery) -> list[tuple[str, object]]:
    version = core_version()
    plugins: list[tuple[str, object]] = []
    for name, module_name in BUILTIN_PLUGINS:
        disabled = name in settings.disabled_plugins or (
            settings.plugins is not None and name not in settings.plugins
        )
        if disabled and name not in ESSENTIAL_BUILTINS:
            discovery.infos[name] = PluginInfo(
                name, "mailproxy-core", version, "disabled", builtin=True
            )
            continue
        module = importlib.import_module(module_name)
        discovery.infos[name] = PluginInfo(name, "mailproxy-core", version, "loaded", builtin=True)
        plugins.append((name, module))
    return plugins


class MailProxy:
    """The running service as plugins see it: settings, database, registry, shared clients."""

    def __init__(
        self,
        settings: Settings,
        *,
        hooks: HookCalls,
        registry: Registry,
        discovery: Discovery,
    ) -> None:
        self.settings = settings
        self.hooks = hooks
        self.registry = registry
        self._discovery = discovery
        self.db = Database.from_setting(settings.db)
        self.repos = Repos(self.db)
        self.secrets: SecretBox = secret_box_from_settings(settings)
        self._plugin_settings: dict[str, BaseModel] = {
            name: settings.plugin_settings(name, registry.settings[name].model)
            for name in registry.settings.names()
        }
        self.transports: dict[str, Transport] = {}
        self.directory_version = 0
        """Bumped by :meth:`directory_changed` (tenants, accounts or storages changed here)."""
        self.attachment_fetchers: dict[str, AttachmentFetcher] = {}
        self.reporters: dict[str, Reporter] = {}
        self.send_guards: dict[str, SendGuard] = {}
        self.auth = AuthChain([])
        self._owned: list[object] = []
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._http: httpx.AsyncClient | None = None
        self.role: Role = "local"
        self.started = False
        self.announce: Callable[[str], None] = self._announce_to_log
        self.dispatch_wakeup = asyncio.Event()
        self.report_wakeup = asyncio.Event()
        self.dispatcher: Any = None
        self._run_now_requested = False
        self.report_requests: set[str | None] = set()
        self.data = PluginData(self.db)
        """The data facade for plugins' own tables (``db/plugin_data.py``)."""
        self.receipt_loop: Any = None

    # -- what plugins read ---------------------------------------------------------------------

    @property
    def plugins(self) -> list[PluginInfo]:
        """Every plugin seen: built-ins, loaded, failed and disabled, by name."""
        return [self._discovery.infos[name] for name in sorted(self._discovery.infos)]

    def plugin_settings(self, name: str) -> BaseModel:
        """The validated settings of section ``name`` (registered with ``SettingsSpec``)."""
        try:
            return self._plugin_settings[name]
        except KeyError:
            raise PluginError(f"no settings section {name!r} is registered") from None

    @property
    def http(self) -> httpx.AsyncClient:
        """One shared HTTP client (connection pooling), closed on shutdown."""
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=10.0))
        return self._http

    def storage(self, protocol: str, config: Mapping[str, Any]) -> StorageBackend:
        """A storage backend for one mount; ``ConfigurationError`` for an unknown protocol."""
        if protocol not in self.registry.storage_backends:
            known = ", ".join(sorted(self.registry.storage_backends.names())) or "none installed"
            raise ConfigurationError(f"unknown storage protocol {protocol!r} (available: {known})")
        return self.registry.storage_backends[protocol].factory(self, config)

    def storage_url_schemes(self) -> dict[str, str]:
        """Every URL scheme a storage backend claims (``s3`` ...) → that backend's name."""
        return {
            scheme.lower(): spec.name
            for spec in self.registry.storage_backends
            for scheme in spec.url_schemes
        }

    def storage_for_url(self, url: str) -> tuple[StorageBackend, str]:
        """The backend and path prefix of a storage URL whose scheme a backend claims
        (``s3://bucket/prefix``), built by that backend's ``url_factory``.

        Raises:
            ConfigurationError: the URL has no scheme, no backend claims it, or the backend
                rejects the URL (the message names what is wrong, never a secret).
        """
        scheme, sep, _rest = url.partition("://")
        if not sep or not scheme:
            raise ConfigurationError(f"'{url}' is not a <scheme>://... storage URL")
        owner = self.storage_url_schemes().get(scheme.lower())
        if owner is None:
            claimed = ", ".join(sorted(self.storage_url_schemes())) or "none installed"
            raise ConfigurationError(
                f"no storage backend handles '{scheme}://' URLs (available: {claimed})"
            )
        factory = self.registry.storage_backends[owner].url_factory
        assert factory is not None  # StorageBackendSpec requires it with url_schemes
        return factory(self, url)

    def wake_dispatcher(self, *, run_now: bool = False, broadcast: bool = True) -> None:
        """Wake the dispatcher now (an immediate message, ``instance/run_now``).

        In test mode the dispatcher only runs when ``run_now`` is true. With ``broadcast`` the
        dispatchers of other processes on the same PostgreSQL database are woken too (``NOTIFY``
        on ``DISPATCH_CHANNEL``; ``mail-proxy worker`` processes); the dispatcher passes
        ``broadcast=False`` when it relays such a notification.
        """
        if run_now:
            self._run_now_requested = True
        self.dispatch_wakeup.set()
        if broadcast:
            self.db.notify_soon(DISPATCH_CHANNEL, "run_now" if run_now else "wake")

    async def admin_token_hash(self) -> str | None:
        """The stored hash of the generated admin token, or ``None`` (auth plugins)."""
        return await self.repos.instance.get_admin_token_hash()

    async def store_admin_token_hash(self, token_hash: str, *, only_if_unset: bool = False) -> bool:
        """Store the hash of a new admin token; with ``only_if_unset`` only when none is stored
        (two processes starting together: the first wins). Returns whether it was stored."""
        if only_if_unset:
            return await self.repos.instance.set_admin_token_hash_if_unset(token_hash)
        await self.repos.instance.set_admin_token_hash(token_hash)
        return True

    async def storage_mount(self, tenant_id: str, name: str) -> StorageMount | None:
        """The tenant's storage mount ``name`` with its config decrypted, or ``None`` (for
        plugins: attachment fetchers, cleanup tasks; never return it to a client)."""
        from .records.storages import load_storage

        return await load_storage(self, tenant_id, name)

    async def tenant(self, tenant_id: str) -> Tenant | None:
        """One tenant with its secrets decrypted (for plugins; never return it to a client)."""
        from .records.tenants import load_tenant

        return await load_tenant(self, tenant_id)

    async def account(self, tenant_id: str, account_id: str) -> Account | None:
        """One account with its secrets decrypted, or ``None`` (for plugins; never return it
        to a client)."""
        from .records.accounts import load_account

        return await load_account(self, tenant_id, account_id)

    async def accounts(self, tenant_id: str | None = None) -> list[Account]:
        """Every account of ``tenant_id`` (of every tenant when ``None``), ordered by tenant
        and id, secrets decrypted (for plugins; never return them to a client)."""
        from .records.accounts import load_accounts

        return await load_accounts(self, tenant_id)

    async def save_account(self, tenant_id: str, fields: Mapping[str, Any]) -> Account:
        """Create or replace an account exactly as ``accounts/add`` does; return it decrypted.

        ``fields`` are the fields of ``accounts/add`` (``id`` required; ``tenant_id`` may be
        left out, or must equal ``tenant_id``): the same validation, the same encryption of the
        password and secret options, the same upsert (fields left out go back to their
        defaults; an existing account keeps its pk).
        Inside an open transaction of the calling task (``mp.data.transaction()``, or a
        ``mailproxy_tenant_created`` hook) the write joins it and commits or rolls back with it.

        Raises:
            InvalidInput: a field is invalid (its ``errors`` name each one).
            NotFound: the tenant does not exist.
        """
        from .entities.accounts import account_fields, store_account
        from .records.accounts import account_from_row

        row, _created = await store_account(self, tenant_id, account_fields(tenant_id, fields))
        return account_from_row(self.secrets, row)

    async def account_object(self, tenant_id: str, account_id: str) -> dict[str, Any] | None:
        """The account as ``accounts/get`` answers it (no secrets, plugins' extra fields
        included), or ``None``: for plugin routes that return an account object."""
        from .entities.accounts import load_account_object

        return cast("dict[str, Any] | None", await load_account_object(self, tenant_id, account_id))

    async def tenant_names(self) -> dict[str, str]:
        """Every tenant's id → display name (its id when it has no name)."""
        return {row["id"]: row.get("name") or row["id"] for row in await self.repos.tenants.list()}

    async def queue_stats(self) -> dict[str, Any]:
        """Messages per status and the age in seconds of the oldest ready message (metrics)."""
        return await self.repos.queue.stats(int(time.time()))

    async def status_counts(self, tenant_id: str | None = None) -> dict[str, int]:
        """Messages per status, of one tenant or (``None``) of the whole instance."""
        return await self.repos.messages.status_counts(tenant_id)

    async def search_messages(
        self,
        *,
        tenant_id: str | None = None,
        status: str | None = None,
        text: str | None = None,
        client_id: str | None = None,
        batch_code: str | None = None,
        created_from: int | None = None,
        created_to: int | None = None,
        before_pk: int | None = None,
        limit: int = 50,
    ) -> tuple[list[dict[str, Any]], int | None]:
        """A page of messages newest first, as the API's message objects, and the next cursor.

        Filters combine; ``text`` is a case-insensitive substring of the stored message (the
        caller narrows it to a field) looked for in the 2,000 newest messages passing the other
        filters per call, so a page costs the same on any queue size. Pass the returned cursor
        as ``before_pk`` for the next page; ``None`` means there is none. The caller is
        responsible for scoping ``tenant_id`` to its principal.
        """
        from .entities.message_views import message_object

        rows, cursor = await self.repos.messages.search(
            tenant_id=tenant_id,
            status=status,
            text=text,
            client_id=client_id,
            batch_code=batch_code,
            created_from=created_from,
            created_to=created_to,
            before_pk=before_pk,
            limit=limit,
        )
        return [dict(message_object(row)) for row in rows], cursor

    async def rate_limit_usage(
        self, tenant_id: str, now: int | None = None
    ) -> dict[str, list[RateUsage]]:
        """How much of each rate limit of a tenant and its accounts the current windows used.

        Keys: ``"tenant"`` (the tenant's ``rate_limits``) and each account id (its
        ``limit_per_minute|hour|day``); each value lists one ``RateUsage`` per limit that is
        set, read from the counters every process shares. Empty lists where no limit is set.
        The caller scopes ``tenant_id`` to its principal.

        Raises:
            NotFound: no such tenant.
        """
        from .dispatch.ratelimit import WINDOWS

        tenant = await self.tenant(tenant_id)
        if tenant is None:
            raise NotFound(f"tenant '{tenant_id}' not found")
        at = int(time.time()) if now is None else now
        accounts = await self.accounts(tenant_id)
        limits: dict[str, tuple[str, dict[str, int]]] = {
            "tenant": (
                f"tenant:{tenant_id}",
                {
                    name: int(value)
                    for name in WINDOWS
                    if (value := (tenant.rate_limits or {}).get(f"per_{name}"))
                },
            )
        }
        for account in accounts:
            limits[account.id] = (
                f"account:{account.pk}",
                {
                    name: int(value)
                    for name in WINDOWS
                    if (value := getattr(account, f"limit_per_{name}"))
                },
            )
        counts = await self.repos.queue.rate_counts(
            [scope for scope, _ in limits.values()], WINDOWS, at
        )
        return {
            key: [
                RateUsage(
                    window=name,
                    used=counts.get((scope, WINDOWS[name]), 0),
                    limit=limit,
                    resets_at=at - at % WINDOWS[name] + WINDOWS[name],
                )
                for name, limit in set_limits.items()
            ]
            for key, (scope, set_limits) in limits.items()
        }

    def pool_state(self, account: Account) -> PoolState | None:
        """The connections this process's transport holds for ``account`` (the transport its
        ``transport`` field names), or ``None`` when that transport keeps no pool or does not
        report it (only ``smtp`` does among the bundled ones). Sending workers each have
        their own pool: this is the state of the process asked."""
        transport = self.transports.get(account.transport)
        report = getattr(transport, "pool_state", None)
        if not callable(report):
            return None
        state = report(account)
        return state if isinstance(state, PoolState) else None

    async def kept_message(self, tenant_id: str, message_id: str) -> bytes | None:
        """The raw message (RFC 5322 bytes) as it was handed to the transport, when the
        account's transport keeps a copy (the ``file`` transport's ``.eml`` file); ``None``
        when it does not, or the message was never sent. The caller scopes ``tenant_id``.

        Raises:
            NotFound: no such message.
        """
        row = await self.repos.messages.get(tenant_id, message_id)
        if row is None:
            raise NotFound(f"message '{message_id}' not found for tenant '{tenant_id}'")
        if row["status"] != "sent" or not row.get("account_id"):
            return None
        account = await self.account(tenant_id, row["account_id"])
        if account is None:
            return None
        keeper = getattr(self.transports.get(account.transport), "kept_message", None)
        if not callable(keeper):
            return None
        message = Message(
            pk=int(row["pk"]),
            tenant_id=row["tenant_id"],
            id=row["id"],
            account_id=row["account_id"],
            status=row["status"],
            priority=int(row.get("priority") or 0),
            payload=row.get("payload") or {},
            batch_code=row.get("batch_code"),
            account_pk=row.get("account_pk"),
            attempts=int(row.get("attempts") or 0),
            created_at=int(row.get("created_at") or 0),
            message_id_header=row.get("message_id_header"),
        )
        raw = await keeper(account, message)
        return raw if isinstance(raw, bytes) else None

    def directory_changed(self) -> None:
        """Tenants, accounts or storages changed: drop the dispatcher's caches and wake it.

        Also counts the change in ``directory_version``, so that the reporting loop reloads a
        tenant it holds (a ``client_base_url`` just set is used for the very next report).
        """
        self.directory_version += 1
        if self.dispatcher is not None:
            self.dispatcher.forget_cached()
        self.dispatch_wakeup.set()

    def request_report(self, tenant_id: str | None = None) -> None:
        """Ask the reporting loop to report now: every tenant, and ``tenant_id`` even in DND."""
        self.report_requests.add(tenant_id)
        self.report_wakeup.set()

    def consume_run_now(self) -> bool:
        """Whether ``run_now`` was asked since the last call (the dispatcher's test mode)."""
        requested, self._run_now_requested = self._run_now_requested, False
        return requested

    # -- receipts and Message-IDs ----------------------------------------------------------------

    async def record_receipts(self, receipts: Sequence[Receipt]) -> list[ReceiptResult]:
        """Record receipts (bounces, PEC receipts) as events of the messages they are about.

        In the order given and in one transaction: each receipt is correlated to a message
        (see ``Receipt``), appended to its history once per ``dedup_key`` without changing its
        status, and reported like any other event; ``mailproxy_receipt_received`` is emitted
        for each recorded one after the commit. Returns one ``ReceiptResult`` per receipt
        (``recorded``, ``duplicate``, ``unmatched`` or ``ambiguous``), so a handler can
        acknowledge its source only once the events are durable. Call it outside your own
        ``data.transaction()``, or the events become durable only when that one commits.
        Raises ``ValueError`` (recording nothing) for a receipt without ``event_type`` or
        ``dedup_key``.
        """
        from .dispatch.receipt_recording import record_receipts

        return await record_receipts(self, receipts)

    async def find_messages(
        self,
        *,
        message_id_header: str | None = None,
        client_message_id: str | None = None,
        tenant_id: str | None = None,
        account_id: str | None = None,
        recipient: str | None = None,
        limit: int = 10,
    ) -> list[SentMessage]:
        """Messages by the Message-ID they were sent with (with or without ``<>``) and/or by
        client id, optionally of one tenant (and account) and sent to ``recipient``; oldest
        first, at most ``limit``. Raises ``ValueError`` when neither id is given."""
        from .dispatch.receipt_recording import find_messages

        return await find_messages(
            self,
            message_id_header=message_id_header,
            client_message_id=client_message_id,
            tenant_id=tenant_id,
            account_id=account_id,
            recipient=recipient,
            limit=limit,
        )

    def message_id_header(self, message: Message) -> str:
        """The Message-ID ``message`` is (or was) sent with, identical on every attempt."""
        return message_id_of(message)

    def receipt_handler_status(self, name: str) -> ReceiptHandlerStatus | None:
        """The state of receipt handler ``name``: last successful poll, last error, and whether
        this process polls it; ``None`` for a name no plugin registered.

        Read from the lease row every few seconds by each ``serve`` process, so it is current
        in every process; where no receipt loop runs (``worker``, local commands) only the name
        is known.
        """
        loop = self.receipt_loop
        if loop is not None:
            return loop.status(name)
        if name in self.registry.receipt_handlers:
            return ReceiptHandlerStatus(name)
        return None

    def request_receipt_poll(self, name: str | None = None) -> None:
        """Poll receipt handler ``name`` (every handler when ``None``) at once, in whichever
        ``serve`` process holds it (a plugin calls it after a configuration change)."""
        if self.receipt_loop is not None:
            self.receipt_loop.request(name)
        self.db.notify_soon(RECEIPT_CHANNEL, name or "*")

    @staticmethod
    def _announce_to_log(text: str) -> None:
        log.info("%s", text)

    # -- lifecycle -----------------------------------------------------------------------------

    async def open_database(self) -> None:
        """Connect and bring the schema up to date (also used by local CLI commands)."""
        await self.db.connect()
        # apply_migrations logs each step it applies.
        await apply_migrations(self.db, list(self.registry.migrations))

    async def start(self, role: Role = "serve") -> None:
        """Connect, migrate, build plugin objects, emit ``startup``, start background tasks."""
        self.role = role
        await self.open_database()
        try:
            self._build_objects()
            await self.hooks.startup(self)
            self.started = True
            for spec in self.registry.background_tasks:
                if role == "serve" or (role == "worker" and spec.dispatch_only):
                    self._tasks[spec.name] = asyncio.create_task(
                        self._run_task(spec.name, spec.run), name=f"mailproxy:{spec.name}"
                    )
        except BaseException:
            await self.db.disconnect()
            raise

    def _build_objects(self) -> None:
        def build(table: Any, into: dict[str, Any]) -> None:
            for spec in table:
                obj = spec.factory(self)
                into[spec.name] = obj
                self._owned.append(obj)

        build(self.registry.transports, self.transports)
        build(self.registry.attachment_fetchers, self.attachment_fetchers)
        build(self.registry.reporters, self.reporters)
        build(self.registry.send_guards, self.send_guards)
        backends = sorted(self.registry.auth_backends, key=lambda spec: (spec.order, spec.name))
        chain = []
        for spec in backends:
            backend = spec.factory(self)
            self._owned.append(backend)
            chain.append((spec.name, backend))
        self.auth = AuthChain(chain)

    async def _run_task(self, name: str, run: Callable[[MailProxy], Any]) -> None:
        try:
            await run(self)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background task %r stopped with an error", name)

    async def stop(self) -> None:
        """Cancel background tasks, emit ``shutdown``, close owned objects and the database."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        if self.started:
            await self.hooks.shutdown(self)
        for obj in reversed(self._owned):
            closer = getattr(obj, "aclose", None)
            if closer is None:
                continue
            try:
                result = closer()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("closing %r failed", obj)
        self._owned.clear()
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        self.started = False
        await self.db.disconnect()

    @property
    def background_tasks(self) -> dict[str, asyncio.Task[None]]:
        """Running background tasks by name."""
        return dict(self._tasks)


def build_plugins(
    settings: Settings, *, extra_plugins: Mapping[str, object] | None = None
) -> tuple[HookCalls, Registry, Discovery]:
    """Discover plugins, build and validate the plugin manager, collect the registry.

    ``extra_plugins`` registers in-process plugin objects by name (tests, embedders) after the
    discovered ones. Raises ``PluginError`` for a broken plugin setup.
    """
    builtin_names = [name for name, _ in BUILTIN_PLUGINS]
    discovery = discover_plugins(
        allow=settings.plugins,
        deny=settings.disabled_plugins,
        required=settings.required_plugins,
        reserved=builtin_names,
    )
    plugins = _load_builtins(settings, discovery)
    plugins.extend(discovery.modules.items())
    for name, plugin in (extra_plugins or {}).items():
        if name in discovery.infos:
            raise PluginError(f"plugin name {name!r} is already taken")
        discovery.infos[name] = PluginInfo(name, None, None, "loaded")
        plugins.append((name, plugin))
    pm = build_plugin_manager(plugins)
    for name, _ in plugins:
        discovery.set_hooks(name, hooks_of(pm, name))
    hooks = HookCalls(pm)
    return hooks, Registry.collect(hooks), discovery


def build_kernel(
    settings: Settings, *, extra_plugins: Mapping[str, object] | None = None
) -> MailProxy:
    """Build the plugins (see ``build_plugins``) and the kernel around them.

    Raises ``PluginError`` or ``ConfigurationError`` for a broken setup.
    """
    hooks, registry, discovery = build_plugins(settings, extra_plugins=extra_plugins)
    return MailProxy(settings, hooks=hooks, registry=registry, discovery=discovery)
