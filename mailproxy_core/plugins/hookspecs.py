"""Every hook of mail-proxy (docs/architecture.md).

Five kinds:

* **Registration** hooks (sync, called once per app at creation) return iterables of spec objects
  from ``mailproxy_core.specs``. The registry rejects a name registered twice.
* **Decision** hooks (sync, ``firstresult``) return an answer or ``None`` to decline; the kernel's
  own answer is a ``trylast`` implementation, so any plugin that answers wins.
* **Mutation** hooks (sync, broadcast) change the object they are handed.
* **Event** hooks may be ``async def``; they are awaited one at a time, a failing implementation is
  logged and does not stop the others, and results are ignored.
* **Entity** hooks may be ``async def`` too, but run inside the API call that triggers them:
  every implementation is awaited, results are used and an exception aborts the call.

An ``async def`` implementation of a registration, decision or mutation hook is a startup error:
pluggy would hand back an un-awaited coroutine. Async work belongs on the objects registration
hooks return.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .markers import hookspec

if TYPE_CHECKING:
    from email.message import EmailMessage

    from ..kernel import MailProxy
    from ..models import (
        Account,
        AttachmentRef,
        Envelope,
        ErrorClass,
        Message,
        Receipt,
        ReceiptResult,
        SendResult,
        Tenant,
    )
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

# --------------------------------------------------------------------------------------------
# Registration hooks
# --------------------------------------------------------------------------------------------


@hookspec
def mailproxy_register_settings() -> Iterable[SettingsSpec]:
    """Declare the plugin's settings model.

    When: once, first of all registration hooks, before settings are validated.
    Arguments: none. Returns: ``SettingsSpec`` objects; ``name`` is the settings section
    (``[plugins.<name>]`` in TOML, ``MAILPROXY_<NAME>__<FIELD>`` in the environment).
    Sync only. Example::

        @hookimpl
        def mailproxy_register_settings():
            return [SettingsSpec("smtp", SmtpSettings)]
    """


@hookspec
def mailproxy_register_transports() -> Iterable[TransportSpec]:
    """Declare transports, selected per account by its ``transport`` field.

    When: once at app creation. Arguments: none. Returns: ``TransportSpec(name, factory)``; the
    factory gets the ``MailProxy`` kernel at startup and returns a ``Transport``. Sync only.
    Example::

        @hookimpl
        def mailproxy_register_transports():
            return [TransportSpec("http-relay", HttpRelayTransport)]
    """


@hookspec
def mailproxy_register_storage_backends() -> Iterable[StorageBackendSpec]:
    """Declare storage protocols usable in a tenant's ``storages`` mounts.

    When: once at app creation. Arguments: none. Returns: ``StorageBackendSpec(name, factory)``;
    the factory gets the kernel and the mount's decrypted config. ``storages/add`` calls the
    factory once to check a new mount: it raises ``ConfigurationError`` naming what is wrong
    (the message goes to the client; never quote a secret) and does no network I/O. Sync only.
    Example::

        @hookimpl
        def mailproxy_register_storage_backends():
            return [StorageBackendSpec("local", LocalStorage.from_config)]
    """


@hookspec
def mailproxy_register_attachment_fetchers() -> Iterable[AttachmentFetcherSpec]:
    """Declare attachment fetch modes.

    When: once at app creation. Arguments: none. Returns: ``AttachmentFetcherSpec(name,
    factory)``; the name is the ``fetch_mode`` clients use. Sync only. Example::

        @hookimpl
        def mailproxy_register_attachment_fetchers():
            return [AttachmentFetcherSpec("http_url", HttpUrlFetcher)]
    """


@hookspec
def mailproxy_register_auth_backends() -> Iterable[AuthBackendSpec]:
    """Declare authentication backends for the API.

    When: once at app creation. Arguments: none. Returns: ``AuthBackendSpec(name, factory,
    order)``; the auth chain asks backends in ascending ``order`` until one returns a
    ``Principal``. Sync only. Example::

        @hookimpl
        def mailproxy_register_auth_backends():
            return [AuthBackendSpec("admin_token", AdminTokenBackend, order=10)]
    """


@hookspec
def mailproxy_register_reporters() -> Iterable[ReporterSpec]:
    """Declare delivery reporters; a tenant's ``reporter`` field names the one it uses.

    When: once at app creation. Arguments: none. Returns: ``ReporterSpec(name, factory)``.
    Sync only. Example::

        @hookimpl
        def mailproxy_register_reporters():
            return [ReporterSpec("http", HttpReporter)]
    """


@hookspec
def mailproxy_register_receipt_handlers() -> Iterable[ReceiptHandlerSpec]:
    """Declare receipt sources (bounce mailboxes, PEC mailboxes).

    When: once at app creation. Arguments: none. Returns: ``ReceiptHandlerSpec(name,
    factory)``; in one ``serve`` process at a time (a lease in the database) the receipt loop
    builds the handler with ``factory(mp)`` and calls its ``poll()`` every
    ``handler.poll_interval`` seconds and on ``instance/run_now`` or
    ``mp.request_receipt_poll(name)``. The poll hands receipts to ``mp.record_receipts``.
    Sync only. Example::

        @hookimpl
        def mailproxy_register_receipt_handlers():
            return [ReceiptHandlerSpec("ee_bounce", BounceMailbox)]
    """


@hookspec
def mailproxy_register_endpoints() -> Iterable[EndpointSpec]:
    """Declare API entities, or extra methods on an existing entity.

    When: once at app creation. Arguments: none. Returns: ``EndpointSpec(entity, endpoint_class)``;
    each public ``async def`` method of the class becomes ``/{entity}/{method}``, a CLI command and
    an OpenAPI operation. A method name registered twice for one entity is an error. Sync only.
    Example::

        @hookimpl
        def mailproxy_register_endpoints():
            return [EndpointSpec("tenants", TenantApiKeyMethods)]
    """


@hookspec
def mailproxy_register_routes() -> Iterable[RouteSpec]:
    """Declare raw Quart blueprints for routes outside ``/{entity}/{method}``.

    When: once at app creation. Arguments: none. Returns: ``RouteSpec(name, blueprint,
    public_paths)``; paths in ``public_paths`` answer without credentials. Sync only. Example::

        @hookimpl
        def mailproxy_register_routes():
            return [RouteSpec("metrics", metrics_blueprint, public_paths=("/metrics",))]
    """


@hookspec
def mailproxy_register_migrations() -> Iterable[MigrationSpec]:
    """Declare versioned schema steps for the plugin's own tables (prefixed with its name).

    When: once at app creation; steps are applied at startup and by ``mail-proxy migrate``.
    Arguments: none. Returns: ``MigrationSpec(component, version, description, upgrade)``; the
    async ``upgrade(ctx)`` runs inside a transaction. Sync only. Example::

        @hookimpl
        def mailproxy_register_migrations():
            return [MigrationSpec("bounce", 1, "bounce tables", create_bounce_tables)]
    """


@hookspec
def mailproxy_register_background_tasks() -> Iterable[BackgroundTaskSpec]:
    """Declare long-running coroutines started with the service and cancelled at shutdown.

    When: once at app creation. Arguments: none. Returns: ``BackgroundTaskSpec(name, run,
    dispatch_only)``; ``run(mp)`` is awaited in its own task. Sync only. Example::

        @hookimpl
        def mailproxy_register_background_tasks():
            return [BackgroundTaskSpec("download_cleanup", delete_expired_downloads)]
    """


@hookspec
def mailproxy_register_send_guards() -> Iterable[SendGuardSpec]:
    """Declare guards consulted before every send (suppression lists, quotas).

    When: once at app creation. Arguments: none. Returns: ``SendGuardSpec(name, factory)``.
    Sync only. Example::

        @hookimpl
        def mailproxy_register_send_guards():
            return [SendGuardSpec("suppression", SuppressionGuard)]
    """


@hookspec
def mailproxy_register_view_extensions() -> Iterable[ViewExtensionSpec]:
    """Declare extra fields on the API objects of tenants or accounts.

    When: once at app creation. Arguments: none. Returns: ``ViewExtensionSpec(name, entity,
    extend)`` with ``entity`` ``"tenants"`` or ``"accounts"``. ``await extend(mp, views)`` gets
    the objects of one response at once (``get``, ``add``, ``update``: one; ``list``: all of them)
    and returns one mapping of extra fields per object, in the same order; an extra field never
    replaces a field of the kernel. It runs on every such response: read what it needs in one
    query for the whole list, and never return a secret. Sync only (``extend`` is async).
    Example::

        @hookimpl
        def mailproxy_register_view_extensions():
            async def has_key(mp, views):
                ids = await tenants_with_a_key(mp, [view["id"] for view in views])
                return [{"has_api_key": view["id"] in ids} for view in views]

            return [ViewExtensionSpec("api_keys", "tenants", has_key)]
    """


# --------------------------------------------------------------------------------------------
# Decision hooks
# --------------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def mailproxy_select_transport(account: Account, message: Message) -> str | None:
    """Choose the transport name for one send.

    When: before every send attempt. Arguments: the account and the message. Returns: the name of
    a registered transport, or ``None`` to decline (the default answers ``account.transport``).
    Sync only. Example::

        @hookimpl
        def mailproxy_select_transport(account, message):
            return "null" if message.payload.get("dry_run") else None
    """


@hookspec(firstresult=True)
def mailproxy_resolve_fetcher(
    ref: AttachmentRef, tenant: Tenant, storage_names: frozenset[str]
) -> str | None:
    """Choose the fetcher for one attachment.

    When: for each attachment before it is fetched. Arguments: the attachment spec, its tenant and
    the names of the tenant's storage mounts. Returns: a registered fetcher name or ``None``
    (the default honours ``fetch_mode`` and otherwise infers it). Sync only.
    Example::

        @hookimpl
        def mailproxy_resolve_fetcher(ref, tenant, storage_names):
            return "vault" if ref.storage_path.startswith("vault://") else None
    """


@hookspec(firstresult=True)
def mailproxy_classify_error(error: BaseException) -> ErrorClass | None:
    """Decide whether a failed send is transient, permanent or rate limited.

    When: after a transport or fetcher raised. Arguments: the exception. Returns: an
    ``ErrorClass`` or ``None`` (the default: ``TransientSendError``, timeouts and connection errors
    are transient, ``RateLimitedError`` is rate limited, the rest permanent). Sync only. Example::

        @hookimpl
        def mailproxy_classify_error(error):
            return ErrorClass.TRANSIENT if "greylisted" in str(error) else None
    """


@hookspec(firstresult=True)
def mailproxy_retry_delay(
    retry: int, error: BaseException | None, message: Message, delays: Sequence[float]
) -> float | None:
    """Decide how many seconds to wait before retry number ``retry`` (1-based).

    When: after a transient failure that will be retried. Arguments: the retry number, the error,
    the message and the configured ``MAILPROXY_RETRY_DELAYS``. Returns: seconds, or ``None``
    (the default: ``delays[min(retry-1, len-1)]`` with ±10 % jitter). Sync only. Example::

        @hookimpl
        def mailproxy_retry_delay(retry, error, message, delays):
            return 5.0 if message.priority == 0 else None
    """


@hookspec(firstresult=True)
def mailproxy_envelope_sender(message: Message, account: Account) -> str | None:
    """Choose the envelope sender (SMTP ``MAIL FROM``, the future ``Return-Path``) of one send.

    When: before every send attempt, by both ways of composing a message (the direct wire
    writer stays in use: implementing this hook costs no ``EmailMessage``). Arguments: the
    message and its account. Returns: a bare address, or ``None`` to decline (the default: the
    message's ``return_path``, else its ``From`` address). Headers are not changed. Sync only.
    Example::

        @hookimpl
        def mailproxy_envelope_sender(message, account):
            if message.payload.get("return_path"):
                return None  # the client chose one
            return "bounces@mail.example.com"
    """


# --------------------------------------------------------------------------------------------
# Mutation hooks
# --------------------------------------------------------------------------------------------


@hookspec
def mailproxy_prepare_message(mime: EmailMessage, message: Message, account: Account) -> None:
    """Change an outgoing MIME message in place (headers, DKIM signature, VERP).

    When: after composition, before each send attempt, every implementation in turn.
    Arguments: the ``EmailMessage``, the queued message and the account. Returns: nothing.
    Sync only. Cost: while no plugin implements this hook, messages are written straight to
    wire bytes, skipping the ``EmailMessage`` (which cost about half of a send's CPU, and most of
    it for a message with attachments); implement it only to change messages. Example::

        @hookimpl
        def mailproxy_prepare_message(mime, message, account):
            mime["X-Campaign"] = message.batch_code or "none"
    """


# --------------------------------------------------------------------------------------------
# Event hooks
# --------------------------------------------------------------------------------------------


@hookspec
def mailproxy_startup(mp: MailProxy) -> None:
    """The service has started: database connected, migrations applied, plugins built.

    When: once per app start, before background tasks run. Arguments: the kernel. Returns:
    ignored. May be ``async def``. Example::

        @hookimpl
        async def mailproxy_startup(mp):
            await warm_cache(mp)
    """


@hookspec
def mailproxy_shutdown(mp: MailProxy) -> None:
    """The service is stopping; release what the plugin holds.

    When: once per app stop, after background tasks were cancelled, before the database closes.
    Arguments: the kernel. Returns: ignored. May be ``async def``. Example::

        @hookimpl
        async def mailproxy_shutdown(mp):
            await my_pool.close()
    """


@hookspec
def mailproxy_message_queued(mp: MailProxy, message: Message) -> None:
    """A message was stored in the queue (new or replaced).

    When: after the enqueue transaction committed. Arguments: the kernel and the message.
    Returns: ignored. May be ``async def``. Example::

        @hookimpl
        def mailproxy_message_queued(mp, message):
            log.info("queued %s", message.id)
    """


@hookspec
def mailproxy_message_sent(
    mp: MailProxy,
    message: Message,
    result: SendResult,
    duration: float | None,
    envelope: Envelope,
    suppressed: tuple[str, ...],
) -> None:
    """The transport accepted a message.

    When: after the ``sent`` status and event were committed. Arguments: the kernel, the
    message, the transport's result (refused recipients included), ``duration``, the seconds
    ``Transport.send`` took, ``envelope``, what was actually sent: its ``sender`` (MAIL
    FROM), ``recipients`` (without those a send guard dropped) and ``message_id`` (the
    ``Message-ID`` header), and ``suppressed``, the recipients a send guard dropped (the
    ``sent`` event's ``metadata.suppressed``; empty when none was). Returns: ignored. May be
    ``async def``. Implementations may leave out arguments they do not use. Example::

        @hookimpl
        def mailproxy_message_sent(mp, message, result, duration):
            send_seconds.observe(duration)
    """


@hookspec
def mailproxy_message_failed(
    mp: MailProxy, message: Message, error: str, duration: float | None, suppressed: tuple[str, ...]
) -> None:
    """A message ended in ``error`` (permanent failure or retries exhausted).

    When: after the ``error`` status and event were committed. Arguments: the kernel, the
    message, the failure text, ``duration``, the seconds ``Transport.send`` took, or ``None``
    when the attempt never reached a transport (refused before sending), and ``suppressed``:
    when a send guard dropped every recipient (error ``suppressed: <address>``), those
    recipients, else empty. Returns: ignored. May be ``async def``. Implementations may leave
    out arguments they do not use. Example::

        @hookimpl
        def mailproxy_message_failed(mp, message, error):
            error_counter.inc()
    """


@hookspec
def mailproxy_message_deferred(
    mp: MailProxy, message: Message, reason: str, next_attempt_ts: int, duration: float | None
) -> None:
    """A message will be tried again later (transient failure or rate limit).

    When: after the ``deferred`` status and event were committed. Arguments: the kernel, the
    message, the reason (``rate_limit`` for rate limits), the next attempt time and
    ``duration``, the seconds ``Transport.send`` took, or ``None`` when the attempt never
    reached a transport (rate limit, send guard, attachment fetch). Returns: ignored. May be
    ``async def``. Implementations may leave out arguments they do not use. Example::

        @hookimpl
        def mailproxy_message_deferred(mp, message, reason, next_attempt_ts):
            deferred_counter.inc()
    """


@hookspec
def mailproxy_receipt_received(mp: MailProxy, receipt: Receipt, result: ReceiptResult) -> None:
    """A receipt (bounce, PEC receipt) was matched to a message and recorded as a new event.

    When: after ``mp.record_receipts`` committed the event; not for duplicates, unmatched or
    ambiguous receipts. Arguments: the kernel, the ``Receipt`` and its ``ReceiptResult``
    (``message_pk``, ``tenant_id`` and the client's ``message_id`` of the matched message).
    Returns: ignored. May be ``async def``. Implementations may leave out arguments they do not
    use. Example::

        @hookimpl
        async def mailproxy_receipt_received(mp, receipt, result):
            if receipt.metadata.get(MetaKey.BOUNCE_TYPE) == "hard":
                await suppress(mp, result.tenant_id, receipt.metadata[MetaKey.RECIPIENT])
    """


# --------------------------------------------------------------------------------------------
# Entity hooks
# --------------------------------------------------------------------------------------------


@hookspec
def mailproxy_tenant_created(mp: MailProxy, tenant: Tenant) -> Mapping[str, Any] | None:
    """A ``tenants/add`` call is creating a tenant: set up what the plugin keeps per tenant.

    When: inside the transaction of the ``tenants/add`` call that creates the tenant, after the
    row was written; never when ``tenants/add`` updates an existing tenant. Database work done
    here (``mp.save_account``, the plugin's own tables) commits or rolls back with the tenant.
    Arguments: the kernel and the new tenant (secrets decrypted). Returns: a mapping of fields
    added to the ``tenants/add`` response (only to this one response: a secret shown once), or
    ``None``. Every implementation is called; an exception aborts the call and the tenant is
    not created (a ``MailproxyError`` reaches the client with its status). May be
    ``async def``. Example::

        @hookimpl
        async def mailproxy_tenant_created(mp, tenant):
            key = new_token()
            await store_key_hash(mp, tenant.id, hash_token(key))
            return {"api_key": key}
    """


REGISTRATION_HOOKS: tuple[str, ...] = (
    "mailproxy_register_settings",
    "mailproxy_register_transports",
    "mailproxy_register_storage_backends",
    "mailproxy_register_attachment_fetchers",
    "mailproxy_register_auth_backends",
    "mailproxy_register_reporters",
    "mailproxy_register_receipt_handlers",
    "mailproxy_register_endpoints",
    "mailproxy_register_routes",
    "mailproxy_register_migrations",
    "mailproxy_register_background_tasks",
    "mailproxy_register_send_guards",
    "mailproxy_register_view_extensions",
)
DECISION_HOOKS: tuple[str, ...] = (
    "mailproxy_select_transport",
    "mailproxy_resolve_fetcher",
    "mailproxy_classify_error",
    "mailproxy_retry_delay",
    "mailproxy_envelope_sender",
)
MUTATION_HOOKS: tuple[str, ...] = ("mailproxy_prepare_message",)
EVENT_HOOKS: tuple[str, ...] = (
    "mailproxy_startup",
    "mailproxy_shutdown",
    "mailproxy_message_queued",
    "mailproxy_message_sent",
    "mailproxy_message_failed",
    "mailproxy_message_deferred",
    "mailproxy_receipt_received",
)
ENTITY_HOOKS: tuple[str, ...] = ("mailproxy_tenant_created",)
"""May be async like event hooks, but run inside the API call: results are used, errors abort."""
ALL_HOOKS: tuple[str, ...] = (
    REGISTRATION_HOOKS + DECISION_HOOKS + MUTATION_HOOKS + EVENT_HOOKS + ENTITY_HOOKS
)
