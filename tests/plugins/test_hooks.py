"""One test per hook (``test_hook_<name>``); ``test_every_hook_has_a_test`` keeps it that way."""

from __future__ import annotations

import asyncio
import email.message
import logging
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from quart import Blueprint

from mailproxy_core import (
    Account,
    AttachmentFetcherSpec,
    AttachmentRef,
    AuthBackendSpec,
    BackgroundTaskSpec,
    ConfigurationError,
    Endpoint,
    EndpointSpec,
    ErrorClass,
    GuardVerdict,
    InvalidInput,
    Message,
    MigrationSpec,
    PermanentSendError,
    Principal,
    Receipt,
    ReceiptHandlerSpec,
    ReportAck,
    ReporterSpec,
    RouteSpec,
    SendGuardSpec,
    SendResult,
    SettingsSpec,
    StorageBackendSpec,
    Tenant,
    TransientSendError,
    TransportSpec,
    ViewExtensionSpec,
    any_principal,
    hookimpl,
)
from mailproxy_core.app import create_app, kernel_of
from mailproxy_core.kernel import build_kernel
from mailproxy_core.plugins.hookspecs import ALL_HOOKS
from mailproxy_core.settings import Settings
from mailproxy_core.testing.dispatch import dispatch_now
from mailproxy_core.testing.plugin import ADMIN_TOKEN, admin_token_plugins

ACCOUNT = Account(pk="a-pk", tenant_id="acme", id="main", host="smtp.example.com", port=587)
MESSAGE = Message(
    pk=1, tenant_id="acme", id="m1", account_id="main", status="pending", priority=2, payload={}
)
TENANT = Tenant(id="acme")


def make_settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings.from_values(db=str(tmp_path / "mp.db"), api_token="admin-token", **values)


async def started(tmp_path: Path, plugin: object, name: str = "probe", **values: Any):
    app = create_app(make_settings(tmp_path, **values), extra_plugins={name: plugin})
    return app


def test_every_hook_has_a_test():
    tests = {name for name in dir(sys.modules[__name__]) if name.startswith("test_hook_")}
    missing = [
        hook for hook in ALL_HOOKS if f"test_hook_{hook.removeprefix('mailproxy_')}" not in tests
    ]
    assert missing == []


# -- registration hooks ---------------------------------------------------------------------------


class ProbeSettings(BaseModel):
    pool_size: int = 4
    label: str = "x"


class SettingsPlugin:
    @hookimpl
    def mailproxy_register_settings(self):
        return [SettingsSpec("probe", ProbeSettings)]


def test_hook_register_settings(tmp_path):
    mp = build_kernel(
        make_settings(tmp_path, plugin_sections={"probe": {"pool_size": "9"}}),
        extra_plugins={"probe": SettingsPlugin()},
    )
    probe = mp.plugin_settings("probe")
    assert isinstance(probe, ProbeSettings)
    assert probe.pool_size == 9 and probe.label == "x"
    with pytest.raises(ConfigurationError, match="pool_size"):
        build_kernel(
            make_settings(tmp_path, plugin_sections={"probe": {"pool_size": "many"}}),
            extra_plugins={"probe": SettingsPlugin()},
        )


class EchoTransport:
    def __init__(self, mp):
        self.mp = mp
        self.closed = False

    async def send(self, account, envelope, mime_bytes):
        return SendResult(accepted=envelope.recipients)

    async def aclose(self):
        self.closed = True


async def test_hook_register_transports(tmp_path):
    class Plugin:
        @hookimpl
        def mailproxy_register_transports(self):
            return [TransportSpec("echo", EchoTransport)]

    app = await started(tmp_path, Plugin())
    mp = kernel_of(app)
    async with app.test_app():
        transport = mp.transports["echo"]
        assert isinstance(transport, EchoTransport) and transport.mp is mp
        assert "file" in mp.transports and "null" in mp.transports
    assert transport.closed  # owned objects are closed at shutdown


class MemoryStorage:
    def __init__(self, mp, config):
        self.files: dict[str, bytes] = {}
        self.prefix = config["prefix"]

    async def read(self, path):
        return self.files[self.prefix + path]

    async def write(self, path, data):
        self.files[self.prefix + path] = data

    async def delete(self, path):
        self.files.pop(self.prefix + path, None)

    async def exists(self, path):
        return self.prefix + path in self.files

    async def url(self, path, expires_in=None):
        return None


async def test_hook_register_storage_backends(tmp_path):
    class Plugin:
        @hookimpl
        def mailproxy_register_storage_backends(self):
            return [StorageBackendSpec("memory", MemoryStorage)]

    mp = build_kernel(make_settings(tmp_path), extra_plugins={"probe": Plugin()})
    storage = mp.storage("memory", {"prefix": "t/"})
    await storage.write("a.txt", b"hello")
    assert await storage.read("a.txt") == b"hello"
    with pytest.raises(ConfigurationError, match="unknown storage protocol 'ftp'"):
        mp.storage("ftp", {})


async def test_hook_register_attachment_fetchers(tmp_path):
    class UpperFetcher:
        def __init__(self, mp):
            pass

        async def fetch(self, ref, tenant, max_bytes):
            return ref.storage_path.upper().encode()

    class Plugin:
        @hookimpl
        def mailproxy_register_attachment_fetchers(self):
            return [AttachmentFetcherSpec("upper", UpperFetcher)]

    app = await started(tmp_path, Plugin())
    async with app.test_app():
        fetchers = kernel_of(app).attachment_fetchers
        ref = AttachmentRef(filename="a.txt", storage_path="abc")
        assert await fetchers["upper"].fetch(ref, TENANT, None) == b"ABC"
        inline = AttachmentRef(filename="b.txt", storage_path="base64:aGk=")
        assert await fetchers["base64"].fetch(inline, TENANT, None) == b"hi"


async def test_hook_register_auth_backends(tmp_path):
    class HeaderBackend:
        def __init__(self, mp):
            pass

        async def authenticate(self, request):
            if request.headers.get("X-Tenant-Pass") == "acme-secret":
                return Principal.tenant("acme")
            return None

    class Plugin:
        @hookimpl
        def mailproxy_register_auth_backends(self):
            return [AuthBackendSpec("header", HeaderBackend, order=5)]

    app = await started(tmp_path, Plugin())
    async with app.test_app():
        client = app.test_client()
        ok = await client.get("/instance/status", headers={"X-Tenant-Pass": "acme-secret"})
        assert ok.status_code == 200
        refused = await client.get("/instance/plugins", headers={"X-Tenant-Pass": "acme-secret"})
        assert refused.status_code == 403  # a tenant principal on an admin-only route
        anonymous = await client.get("/instance/status", headers={"X-Tenant-Pass": "wrong"})
        assert anonymous.status_code == 401


async def test_hook_register_reporters(tmp_path):
    class ListReporter:
        def __init__(self, mp):
            self.seen: list[Any] = []

        async def report(self, tenant, events):
            self.seen.extend(events)
            return ReportAck(ok=True)

    class Plugin:
        @hookimpl
        def mailproxy_register_reporters(self):
            return [ReporterSpec("bus", ListReporter)]

    app = await started(tmp_path, Plugin())
    async with app.test_app():
        reporter = kernel_of(app).reporters["bus"]
        ack = await reporter.report(TENANT, [])
        assert ack.ok


async def test_hook_register_receipt_handlers(tmp_path):
    polled = asyncio.Event()

    class Mailbox:
        poll_interval = 3600.0

        def __init__(self, mp):
            self.mp = mp

        async def poll(self):
            polled.set()

    class Plugin:
        @hookimpl
        def mailproxy_register_receipt_handlers(self):
            return [ReceiptHandlerSpec("mailbox", Mailbox)]

    app = await started(tmp_path, Plugin(), test_mode=True)
    async with app.test_app():
        mp = kernel_of(app)
        assert mp.registry.receipt_handlers.plugin_of("mailbox") == "probe"
        mp.request_receipt_poll("mailbox")  # test mode: handlers poll only when asked
        await asyncio.wait_for(polled.wait(), 10)
        for _ in range(200):
            status = mp.receipt_handler_status("mailbox")
            if status is not None and status.last_poll_ts is not None:
                break
            await asyncio.sleep(0.02)
        assert status is not None and status.polling and status.last_error is None


@pytest.mark.requires_plugins("auth_token")
async def test_hook_register_endpoints(tmp_path):
    class Greetings(Endpoint):
        @any_principal
        async def hello(self, name: str) -> dict[str, str]:
            """Say hello."""
            return {"hello": name, "caller": self.principal.kind}

    class Plugin:
        @hookimpl
        def mailproxy_register_endpoints(self):
            return [EndpointSpec("greetings", Greetings)]

    app = await started(tmp_path, Plugin())
    async with app.test_app():
        client = app.test_client()
        resp = await client.get(
            "/greetings/hello", query_string={"name": "bob"}, headers={"X-API-Token": "admin-token"}
        )
        assert resp.status_code == 200
        assert await resp.get_json() == {"hello": "bob", "caller": "admin"}
        spec = await (await client.get("/openapi.json")).get_json()
        assert "/greetings/hello" in spec["paths"]


@pytest.mark.requires_plugins("auth_token")
async def test_hook_register_routes(tmp_path):
    blueprint = Blueprint("probe_routes", __name__)

    @blueprint.get("/probe/open")
    async def open_route():
        return {"open": True}

    @blueprint.get("/probe/closed")
    async def closed_route():
        return {"closed": True}

    class Plugin:
        @hookimpl
        def mailproxy_register_routes(self):
            return [RouteSpec("probe_routes", blueprint, public_paths=("/probe/open",))]

    app = await started(tmp_path, Plugin())
    async with app.test_app():
        client = app.test_client()
        assert (await client.get("/probe/open")).status_code == 200
        assert (await client.get("/probe/closed")).status_code == 401
        allowed = await client.get("/probe/closed", headers={"X-API-Token": "admin-token"})
        assert await allowed.get_json() == {"closed": True}


async def test_hook_register_migrations(tmp_path):
    import sqlalchemy as sa

    table = sa.Table("probe_notes", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True))

    async def create(ctx):
        await ctx.create_tables(table)

    class Plugin:
        @hookimpl
        def mailproxy_register_migrations(self):
            return [MigrationSpec("probe", 1, "notes table", create)]

    app = await started(tmp_path, Plugin())
    async with app.test_app():
        mp = kernel_of(app)
        from mailproxy_core.db.migrate import migration_status

        status = await migration_status(mp.db, list(mp.registry.migrations))
        assert any(s.component == "probe" and s.applied for s in status)


async def test_hook_register_background_tasks(tmp_path):
    ran = asyncio.Event()
    cancelled = asyncio.Event()

    async def loop(mp):
        ran.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    class Plugin:
        @hookimpl
        def mailproxy_register_background_tasks(self):
            return [BackgroundTaskSpec("probe_loop", loop)]

    app = await started(tmp_path, Plugin())
    async with app.test_app():
        await asyncio.wait_for(ran.wait(), 5)
        assert "probe_loop" in kernel_of(app).background_tasks
    assert cancelled.is_set()


async def test_hook_register_send_guards(tmp_path):
    class NoNight:
        def __init__(self, mp):
            pass

        async def check(self, message, account):
            return GuardVerdict(allow=False, reason="quiet hours", retry_at=123.0)

    class Plugin:
        @hookimpl
        def mailproxy_register_send_guards(self):
            return [SendGuardSpec("no_night", NoNight)]

    app = await started(tmp_path, Plugin())
    async with app.test_app():
        verdict = await kernel_of(app).send_guards["no_night"].check(MESSAGE, ACCOUNT)
        assert not verdict.allow and verdict.reason == "quiet hours"


class ViewFlags:
    """Extends tenant and account objects; records the size of every batch it was given."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, list[str]]] = []

    async def tenants(self, mp, views):
        self.batches.append(("tenants", [view["id"] for view in views]))
        keys = {"acme"}  # what an API-key plugin would read in one query
        return [{"has_api_key": view["id"] in keys, "name": "not replaced"} for view in views]

    async def accounts(self, mp, views):
        self.batches.append(("accounts", [view["id"] for view in views]))
        return [{"pec": view["id"].startswith("pec")} for view in views]

    @hookimpl
    def mailproxy_register_view_extensions(self):
        return [
            ViewExtensionSpec("key_flags", "tenants", self.tenants),
            ViewExtensionSpec("pec_flag", "accounts", self.accounts),
        ]


async def test_hook_register_view_extensions(serve_app):
    flags = ViewFlags()
    async with serve_app({"flags": flags}) as live:
        added = await live.post("/tenants/add", {"id": "acme", "name": "Acme"})
        assert added.status_code == 200, added.text
        assert added.json()["has_api_key"] is True and added.json()["name"] == "Acme"
        assert (await live.post("/tenants/add", {"id": "globex"})).json()["has_api_key"] is False
        got = (await live.get("/tenants/get", tenant_id="acme")).json()
        assert got["has_api_key"] is True
        listed = (await live.get("/tenants/list")).json()
        assert [(t["id"], t["has_api_key"]) for t in listed] == [("acme", True), ("globex", False)]
        updated = await live.post("/tenants/update", {"tenant_id": "globex", "name": "G"})
        assert updated.json()["has_api_key"] is False and updated.json()["name"] == "G"

        for account_id in ("main", "pec-1"):
            account = {"id": account_id, "tenant_id": "acme", "transport": "null"}
            saved = await live.post("/accounts/add", account)
            assert saved.status_code == 200, saved.text
            assert saved.json()["pec"] is account_id.startswith("pec")
        got = (await live.get("/accounts/get", tenant_id="acme", account_id="pec-1")).json()
        assert got["pec"] is True
        listed = (await live.get("/accounts/list", tenant_id="acme")).json()
        assert [(a["id"], a["pec"]) for a in listed] == [("main", False), ("pec-1", True)]
    # One call per response: a list comes as one batch, not one call per row.
    assert flags.batches == [
        ("tenants", ["acme"]),
        ("tenants", ["globex"]),
        ("tenants", ["acme"]),
        ("tenants", ["acme", "globex"]),
        ("tenants", ["globex"]),
        ("accounts", ["main"]),
        ("accounts", ["pec-1"]),
        ("accounts", ["pec-1"]),
        ("accounts", ["main", "pec-1"]),
    ]


# -- decision hooks -------------------------------------------------------------------------------


def test_hook_select_transport(tmp_path):
    plain = build_kernel(make_settings(tmp_path))
    assert plain.hooks.select_transport(ACCOUNT, MESSAGE) == "smtp"

    class DryRun:
        @hookimpl
        def mailproxy_select_transport(self, message):
            return "null" if message.payload.get("dry_run") else None

    mp = build_kernel(make_settings(tmp_path), extra_plugins={"dryrun": DryRun()})
    dry = Message(
        pk=2,
        tenant_id="acme",
        id="m2",
        account_id="main",
        status="pending",
        priority=2,
        payload={"dry_run": True},
    )
    assert mp.hooks.select_transport(ACCOUNT, dry) == "null"
    assert mp.hooks.select_transport(ACCOUNT, MESSAGE) == "smtp"


@pytest.mark.parametrize(
    ("path", "mode", "expected"),
    [
        ("base64:aGk=", None, "base64"),
        ("https://files.example.com/a.pdf", None, "http_url"),
        ("http://files.example.com/a.pdf", None, "http_url"),
        ("/srv/files/a.pdf", None, "filesystem"),
        ("docs:reports/a.pdf", None, "storage"),
        ("other:reports/a.pdf", None, "endpoint"),
        ("invoices/2024/a.pdf", None, "endpoint"),
        ("/srv/files/a.pdf", "endpoint", "endpoint"),
    ],
)
def test_hook_resolve_fetcher(tmp_path, path, mode, expected):
    mp = build_kernel(make_settings(tmp_path))
    ref = AttachmentRef(filename="a.pdf", storage_path=path, fetch_mode=mode)
    assert mp.hooks.resolve_fetcher(ref, TENANT, frozenset({"docs"})) == expected

    class Vault:
        @hookimpl
        def mailproxy_resolve_fetcher(self, ref):
            return "vault" if ref.storage_path.startswith("/srv") else None

    custom = build_kernel(make_settings(tmp_path), extra_plugins={"vault": Vault()})
    answer = custom.hooks.resolve_fetcher(ref, TENANT, frozenset({"docs"}))
    assert answer == ("vault" if path.startswith("/srv") else expected)


def test_hook_classify_error(tmp_path):
    from mailproxy_core import AttachmentError, RateLimitedError

    mp = build_kernel(make_settings(tmp_path))
    classify = mp.hooks.classify_error
    assert classify(TransientSendError("451 try later")) is ErrorClass.TRANSIENT
    assert classify(PermanentSendError("550 no such user")) is ErrorClass.PERMANENT
    assert classify(RateLimitedError("slow down")) is ErrorClass.RATE_LIMITED
    assert classify(TimeoutError()) is ErrorClass.TRANSIENT
    assert classify(ConnectionResetError()) is ErrorClass.TRANSIENT
    assert classify(AttachmentError("500 from server", transient=True)) is ErrorClass.TRANSIENT
    assert classify(AttachmentError("404", transient=False)) is ErrorClass.PERMANENT
    assert classify(ValueError("bad")) is ErrorClass.PERMANENT

    class Greylist:
        @hookimpl
        def mailproxy_classify_error(self, error):
            return ErrorClass.TRANSIENT if "greylisted" in str(error) else None

    custom = build_kernel(make_settings(tmp_path), extra_plugins={"greylist": Greylist()})
    assert custom.hooks.classify_error(PermanentSendError("550 greylisted")) is ErrorClass.TRANSIENT
    assert custom.hooks.classify_error(PermanentSendError("550 nope")) is ErrorClass.PERMANENT


def test_hook_retry_delay(tmp_path):
    mp = build_kernel(make_settings(tmp_path))
    delays = (60.0, 300.0, 900.0)
    for retry, base in [(1, 60.0), (2, 300.0), (3, 900.0), (7, 900.0)]:
        values = {mp.hooks.retry_delay(retry, None, MESSAGE, delays) for _ in range(50)}
        assert all(base * 0.9 <= v <= base * 1.1 for v in values)
        assert len(values) > 1  # jittered

    class Fast:
        @hookimpl
        def mailproxy_retry_delay(self, retry, message):
            return 5.0 if message.priority == 0 else None

    custom = build_kernel(make_settings(tmp_path), extra_plugins={"fast": Fast()})
    urgent = Message(
        pk=3, tenant_id="acme", id="m3", account_id="main", status="pending", priority=0, payload={}
    )
    assert custom.hooks.retry_delay(1, None, urgent, delays) == 5.0
    assert 54 <= custom.hooks.retry_delay(1, None, MESSAGE, delays) <= 66


class BounceAddress:
    @hookimpl
    def mailproxy_envelope_sender(self, message, account):
        if message.payload.get("return_path"):
            return None  # the client's own return_path stays
        return f"bounces+{message.id}@relay.example"


class StampHeader:
    @hookimpl
    def mailproxy_prepare_message(self, mime, message):
        mime["X-Stamped"] = message.id


@pytest.mark.requires_plugins("smtp")
@pytest.mark.parametrize("composer", ["wire", "email"])
async def test_hook_envelope_sender(serve_app, smtp_server, monkeypatch, composer):
    plugins: dict[str, object] = {"bounce_address": BounceAddress()}
    if composer == "email":
        plugins["stamp"] = StampHeader()  # needs the EmailMessage: the stdlib composer
    else:
        # The direct wire writer must stay in use: the stdlib composer would fail the send.
        def no_email_message(*args, **kwargs):
            raise AssertionError("the envelope sender hook left the direct wire path")

        monkeypatch.setattr("mailproxy_core.dispatch.attempt.compose", no_email_message)
    server = await smtp_server()
    async with serve_app(plugins) as live:
        await live.post("/tenants/add", {"id": "acme"})
        account = {
            "id": "main",
            "tenant_id": "acme",
            "host": "127.0.0.1",
            "port": server.port,
            "use_tls": False,
        }
        assert (await live.post("/accounts/add", account)).status_code == 200
        common = {"tenant_id": "acme", "account_id": "main", "to": "bob@example.com"}
        batch = [
            {**common, "id": "m1", "from": "Shop <shop@acme.example>", "subject": "a", "body": "x"},
            {
                **common,
                "id": "m2",
                "from": "shop@acme.example",
                "return_path": "own@acme.example",
                "subject": "b",
                "body": "y",
            },
        ]
        queued = await live.post("/messages/add_batch", {"messages": batch})
        assert queued.json()["queued"] == 2, queued.text
        await dispatch_now(live.mp)
    received = {
        email.message_from_bytes(m.content)["X-Genro-Mail-ID"]: m for m in server.handler.messages
    }
    assert received["m1"].mail_from == "bounces+m1@relay.example"
    assert received["m2"].mail_from == "own@acme.example"
    first = email.message_from_bytes(received["m1"].content)
    assert first["From"] == "Shop <shop@acme.example>"  # headers are not changed
    assert "Return-Path" not in first
    assert (first["X-Stamped"] == "m1") is (composer == "email")


# -- mutation hooks -------------------------------------------------------------------------------


def test_hook_prepare_message(tmp_path):
    class Campaign:
        @hookimpl
        def mailproxy_prepare_message(self, mime, message):
            mime["X-Campaign"] = message.batch_code or "none"

    class Signature:
        @hookimpl
        def mailproxy_prepare_message(self, mime, account):
            mime["X-Account"] = account.id

    mp = build_kernel(
        make_settings(tmp_path), extra_plugins={"campaign": Campaign(), "signature": Signature()}
    )
    mime = email.message.EmailMessage()
    mp.hooks.prepare_message(mime, MESSAGE, ACCOUNT)
    assert mime["X-Campaign"] == "none"
    assert mime["X-Account"] == "main"


# -- event hooks ----------------------------------------------------------------------------------


class Recorder:
    """Implements every event hook, some sync, some async, and one that fails."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    @hookimpl
    async def mailproxy_startup(self, mp):
        await asyncio.sleep(0)
        self.calls.append(("startup", mp.started is False))

    @hookimpl
    async def mailproxy_shutdown(self, mp):
        self.calls.append(("shutdown", mp.started))

    @hookimpl
    def mailproxy_message_queued(self, message):
        self.calls.append(("queued", message.id))

    @hookimpl
    async def mailproxy_message_sent(self, message, result, duration):
        self.calls.append(("sent", (result.accepted, duration)))

    @hookimpl
    def mailproxy_message_failed(self, message, error, duration):
        self.calls.append(("failed", (error, duration)))

    @hookimpl
    def mailproxy_message_deferred(self, message, reason, next_attempt_ts):
        self.calls.append(("deferred", (reason, next_attempt_ts)))

    @hookimpl
    async def mailproxy_receipt_received(self, receipt, result):
        assert result.receipt is receipt
        self.calls.append(("receipt", receipt.event_type))


class Failing:
    @hookimpl
    def mailproxy_message_queued(self, message):
        raise RuntimeError("plugin bug")


async def test_hook_startup(tmp_path):
    recorder = Recorder()
    app = await started(tmp_path, recorder)
    async with app.test_app():
        assert recorder.calls == [("startup", True)]


async def test_hook_shutdown(tmp_path):
    recorder = Recorder()
    app = await started(tmp_path, recorder)
    async with app.test_app():
        pass
    assert recorder.calls[-1] == ("shutdown", True)


async def test_hook_message_queued(tmp_path, caplog):
    recorder = Recorder()
    mp = build_kernel(
        make_settings(tmp_path), extra_plugins={"failing": Failing(), "rec": recorder}
    )
    with caplog.at_level(logging.ERROR):
        await mp.hooks.message_queued(mp, MESSAGE)
    assert recorder.calls == [("queued", "m1")]  # the failing plugin did not stop the recorder
    assert "plugin 'failing' failed in mailproxy_message_queued" in caplog.text


async def test_hook_message_sent(tmp_path):
    recorder = Recorder()
    mp = build_kernel(make_settings(tmp_path), extra_plugins={"rec": recorder})
    await mp.hooks.message_sent(mp, MESSAGE, SendResult(accepted=("a@example.com",)), 0.25)
    assert recorder.calls == [("sent", (("a@example.com",), 0.25))]


async def test_hook_message_failed(tmp_path):
    recorder = Recorder()
    mp = build_kernel(make_settings(tmp_path), extra_plugins={"rec": recorder})
    await mp.hooks.message_failed(mp, MESSAGE, "550 5.1.1 User unknown")
    # No duration given: the attempt never reached a transport.
    assert recorder.calls == [("failed", ("550 5.1.1 User unknown", None))]


async def test_hook_message_deferred(tmp_path):
    recorder = Recorder()
    mp = build_kernel(make_settings(tmp_path), extra_plugins={"rec": recorder})
    await mp.hooks.message_deferred(mp, MESSAGE, "rate_limit", 1_700_000_060)
    assert recorder.calls == [("deferred", ("rate_limit", 1_700_000_060))]


async def test_hook_receipt_received(tmp_path):
    recorder = Recorder()
    settings = Settings.from_values(
        db=str(tmp_path / "mp.db"), api_token=ADMIN_TOKEN, test_mode=True
    )
    app = create_app(settings, extra_plugins={"rec": recorder, **admin_token_plugins()})
    async with app.test_app():
        client = app.test_client()
        headers = {"X-API-Token": ADMIN_TOKEN}
        account = {"id": "main", "tenant_id": "acme", "host": "x.invalid", "port": 25}
        message = {
            "id": "m1",
            "tenant_id": "acme",
            "account_id": "main",
            "from": "a@acme.example",
            "to": "b@example.com",
            "subject": "s",
            "body": "b",
        }
        for path, body in [
            ("/tenants/add", {"id": "acme"}),
            ("/accounts/add", {**account, "transport": "null"}),
            ("/messages/add", message),
        ]:
            response = await client.post(path, json=body, headers=headers)
            assert response.status_code == 200, await response.get_json()
        mp = kernel_of(app)
        (sent,) = await mp.find_messages(client_message_id="m1", tenant_id="acme")
        receipt = Receipt(
            event_type="pec_delivery", dedup_key="r1", message_id_header=sent.message_id_header
        )
        await mp.record_receipts([receipt, receipt])  # the second one is a duplicate
    assert ("receipt", "pec_delivery") in recorder.calls
    assert recorder.calls.count(("receipt", "pec_delivery")) == 1


# -- entity hooks ---------------------------------------------------------------------------------


class FirstKey:
    """Creates a sending account and a key with every new tenant; refuses the id "refused"."""

    def __init__(self) -> None:
        self.created: list[str] = []

    @hookimpl
    async def mailproxy_tenant_created(self, mp, tenant):
        self.created.append(tenant.id)
        await mp.save_account(tenant.id, {"id": "default", "transport": "null"})
        if tenant.id == "refused":
            raise InvalidInput("tenant id 'refused' is reserved")
        # Not "api_key": the EE plugin ee_apikeys answers with that field where it is installed.
        return {"first_key": f"key-of-{tenant.id}"}


class Audit:
    @hookimpl
    def mailproxy_tenant_created(self, tenant):
        return {"audited": tenant.name}


async def test_hook_tenant_created(serve_app, db_url):
    first_key = FirstKey()
    async with serve_app({"first_key": first_key, "audit": Audit()}, db=db_url) as live:
        created = await live.post("/tenants/add", {"id": "acme", "name": "Acme"})
        assert created.status_code == 200, created.text
        body = created.json()
        assert body["first_key"] == "key-of-acme" and body["audited"] == "Acme"
        assert body["id"] == "acme" and body["name"] == "Acme"
        account = await live.mp.account("acme", "default")
        assert account is not None and account.transport == "null"

        # An existing id is an update: the hook is not called, nothing is added.
        again = await live.post("/tenants/add", {"id": "acme", "name": "Acme 2"})
        assert again.status_code == 200 and again.json()["name"] == "Acme 2"
        assert "first_key" not in again.json() and "audited" not in again.json()
        assert "first_key" not in (await live.get("/tenants/get", tenant_id="acme")).json()
        assert first_key.created == ["acme"]

        # A hook that raises aborts the creation, and the work done in it is rolled back.
        refused = await live.post("/tenants/add", {"id": "refused"})
        assert refused.status_code == 422, refused.text
        assert refused.json()["detail"] == "tenant id 'refused' is reserved"
        assert (await live.get("/tenants/get", tenant_id="refused")).status_code == 404
        assert await live.mp.account("refused", "default") is None
        assert first_key.created == ["acme", "refused"]
