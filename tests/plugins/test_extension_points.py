"""Extension points the enterprise plugins stand on, end to end over real sockets: the API served
by hypercorn and called with httpx, messages sent to an aiosmtpd server on loopback.

Send guards that drop recipients (and run before a rate-limit slot is taken), the envelope handed
to ``mailproxy_message_sent``, the public account helpers, and storage URL schemes claimed by a
storage backend for ``large_file_config.storage_url``.
"""

from __future__ import annotations

import base64
import email
import email.policy
import re
from email.message import EmailMessage
from typing import Any

import pytest

from mailproxy_core import (
    ConfigurationError,
    Envelope,
    GuardVerdict,
    InvalidInput,
    NotFound,
    PluginError,
    SendGuardSpec,
    Settings,
    StorageBackendSpec,
    ViewExtensionSpec,
    hookimpl,
)
from mailproxy_core.crypto import generate_key
from mailproxy_core.kernel import build_kernel
from mailproxy_core.testing.dispatch import dispatch_now

SUPPRESSED = {"carol@example.com"}


class Suppression:
    """Drops suppressed recipients; refuses messages whose id starts with ``refuse``."""

    def __init__(self, mp: Any) -> None:
        self.mp = mp

    async def check(self, message: Any, account: Any) -> GuardVerdict:
        if message.id.startswith("refuse"):
            return GuardVerdict(allow=False, reason="refused by policy")
        return GuardVerdict(allow=True, drop_recipients=("CAROL@example.com",))


class SentRecorder:
    def __init__(self) -> None:
        self.sent: dict[str, Envelope] = {}
        self.suppressed: dict[str, tuple[str, ...]] = {}

    @hookimpl
    def mailproxy_register_send_guards(self) -> list[SendGuardSpec]:
        return [SendGuardSpec("suppression", Suppression)]

    @hookimpl
    async def mailproxy_message_sent(
        self, message: Any, envelope: Envelope, suppressed: tuple[str, ...]
    ) -> None:
        self.sent[message.id] = envelope
        self.suppressed[message.id] = suppressed

    @hookimpl
    def mailproxy_message_failed(self, message: Any, suppressed: tuple[str, ...]) -> None:
        self.suppressed[message.id] = suppressed


async def setup_tenant(live: Any, port: int, **account: Any) -> None:
    assert (await live.post("/tenants/add", {"id": "acme"})).status_code == 200
    fields = {"id": "main", "tenant_id": "acme", "host": "127.0.0.1", "port": port}
    added = await live.post("/accounts/add", {**fields, "use_tls": False, **account})
    assert added.status_code == 200, added.text


async def enqueue(live: Any, *messages: dict[str, Any]) -> None:
    common = {"tenant_id": "acme", "account_id": "main", "from": "shop@acme.example"}
    batch = [{**common, "subject": "s", "body": "b", **m} for m in messages]
    queued = await live.post("/messages/add_batch", {"messages": batch})
    assert queued.json()["queued"] == len(batch), queued.text


async def history(live: Any, mid: str) -> list[dict[str, Any]]:
    got = await live.get("/messages/get", message_id=mid, tenant_id="acme", include_history=True)
    assert got.status_code == 200, got.text
    return list(got.json()["history"])


@pytest.mark.requires_plugins("smtp")
async def test_guards_drop_recipients_before_any_rate_limit_slot(serve_app, smtp_server, db_url):
    recorder = SentRecorder()
    server = await smtp_server()
    async with serve_app({"suppression": recorder}, db=db_url) as live:
        # One message a minute: the suppressed and refused ones must not use it up.
        await setup_tenant(live, server.port, limit_per_minute=1)
        await enqueue(
            live,
            {"id": "refuse-1", "to": "bob@example.com"},
            {"id": "all-suppressed", "to": "Carol <carol@example.com>"},
            {"id": "partly", "to": "bob@example.com", "cc": "carol@example.com"},
        )
        await dispatch_now(live.mp)
        assert [(e["event_type"], e["description"]) for e in await history(live, "refuse-1")] == [
            ("error", "refused by policy")
        ]
        (suppressed,) = await history(live, "all-suppressed")
        assert (suppressed["event_type"], suppressed["description"]) == (
            "error",
            "suppressed: carol@example.com",
        )
        (sent,) = await history(live, "partly")
        assert sent["event_type"] == "sent"
        assert sent["metadata"]["suppressed"] == ["carol@example.com"]

        # The slot of this minute went to "partly": the next message waits for the next window.
        await enqueue(live, {"id": "later", "to": "bob@example.com"})
        await dispatch_now(live.mp)
        assert [e["event_type"] for e in await history(live, "later")] == ["deferred"]

    (received,) = server.handler.messages
    assert received.rcpt_tos == ["bob@example.com"]
    mime = email.message_from_bytes(received.content)
    assert mime["Cc"] == "carol@example.com"  # headers are unchanged, only the envelope

    # message_sent got the envelope actually sent: suppressed recipient left out.
    envelope = recorder.sent["partly"]
    assert envelope.recipients == ("bob@example.com",)
    assert envelope.sender == received.mail_from == "shop@acme.example"
    assert envelope.message_id == mime["Message-ID"]
    assert set(recorder.sent) == {"partly"}
    # Both outcome hooks name the recipients a guard dropped (empty when none was).
    assert recorder.suppressed == {
        "refuse-1": (),
        "all-suppressed": ("carol@example.com",),
        "partly": ("carol@example.com",),
    }


class AccountMaker:
    """Uses the public account helpers from an endpoint-free plugin (its startup hook)."""

    def __init__(self) -> None:
        self.mp: Any = None

    @hookimpl
    def mailproxy_startup(self, mp: Any) -> None:
        self.mp = mp


@pytest.mark.requires_plugins("smtp")
async def test_account_helpers_share_accounts_add(serve_app, db_url):
    maker = AccountMaker()
    async with serve_app({"maker": maker}, db=db_url, encryption_key=generate_key()) as live:
        mp = maker.mp
        assert (await live.post("/tenants/add", {"id": "acme"})).status_code == 200
        saved = await mp.save_account(
            "acme",
            {
                "id": "pec",
                "host": "smtps.pec.example",
                "port": 465,
                "user": "box@pec.example",
                "password": "s3cret",
                "options": {"api_key": "opt-secret", "region": "eu"},
            },
        )
        assert saved.password == "s3cret" and saved.options["api_key"] == "opt-secret"
        assert saved.tenant_id == "acme" and saved.transport == "smtp" and saved.ttl == 300
        stored = await mp.repos.accounts.get("acme", "pec")  # encrypted at rest, like accounts/add
        assert stored["password"] != "s3cret" and "opt-secret" not in str(stored["options"])

        # The API sees the same account, with the secrets hidden, exactly as after accounts/add.
        view = (await live.get("/accounts/get", tenant_id="acme", account_id="pec")).json()
        assert view["has_password"] is True and view["secret_option_keys"] == ["api_key"]
        assert view["options"] == {"region": "eu"} and view["pk"] == saved.pk
        assert "s3cret" not in str(view) and "opt-secret" not in str(view)

        # Same upsert: the pk stays, fields left out go back to their defaults.
        again = await mp.save_account("acme", {"id": "pec", "transport": "null", "ttl": 60})
        assert again.pk == saved.pk and again.password is None and again.ttl == 60
        via_api = await live.post(
            "/accounts/add", {"id": "main", "tenant_id": "acme", "transport": "null"}
        )
        assert via_api.status_code == 200

        loaded = await mp.account("acme", "pec")
        assert loaded is not None and loaded.transport == "null"
        assert await mp.account("acme", "ghost") is None
        assert [a.id for a in await mp.accounts("acme")] == ["main", "pec"]
        assert await live.post("/tenants/add", {"id": "globex"})
        await mp.save_account("globex", {"id": "x", "transport": "null"})
        assert [(a.tenant_id, a.id) for a in await mp.accounts()] == [
            ("acme", "main"),
            ("acme", "pec"),
            ("globex", "x"),
        ]

        # Same validation, naming each bad field.
        with pytest.raises(InvalidInput) as bad:
            await mp.save_account("acme", {"id": "bad id", "port": 70000, "transport": "smtp"})
        assert {e["field"] for e in bad.value.errors} == {"id", "port", "host"}
        with pytest.raises(InvalidInput) as typo:
            await mp.save_account("acme", {"id": "x", "hots": "smtp.example", "port": "25"})
        assert {e["field"] for e in typo.value.errors} == {"hots", "port"}
        with pytest.raises(NotFound, match="tenant 'ghost' not found"):
            await mp.save_account("ghost", {"id": "x", "transport": "null"})
        with pytest.raises(InvalidInput, match="tenant_id: must be 'acme'"):
            await mp.save_account("acme", {"id": "x", "tenant_id": "globex", "transport": "null"})
        same = {"id": "main", "tenant_id": "acme", "transport": "null", "ttl": 30}
        assert (await mp.save_account("acme", same)).ttl == 30

        # The API object, for plugin routes that answer one (no secrets, as accounts/get).
        await mp.save_account("acme", {"id": "pw", "transport": "null", "password": "pw1"})
        api_object = await mp.account_object("acme", "pw")
        assert (
            api_object
            == (await live.get("/accounts/get", tenant_id="acme", account_id="pw")).json()
        )
        assert api_object["has_password"] is True and "password" not in api_object
        assert await mp.account_object("acme", "ghost") is None


class MemoryBucket:
    """A storage backend kept in memory; links are this fake cloud's signed URLs."""

    def __init__(self, bucket: str) -> None:
        self.bucket = bucket
        self.files: dict[str, bytes] = {}

    async def read(self, path: str) -> bytes:
        return self.files[path]

    async def write(self, path: str, data: bytes) -> None:
        self.files[path] = data

    async def delete(self, path: str) -> None:
        self.files.pop(path, None)

    async def exists(self, path: str) -> bool:
        return path in self.files

    async def url(self, path: str, expires_in: int) -> str:
        return f"https://{self.bucket}.mem.example/{path}?expires={expires_in}"


class MemoryCloud:
    """Claims ``mem://<bucket>/<prefix>`` storage URLs."""

    def __init__(self) -> None:
        self.buckets: dict[str, MemoryBucket] = {}

    def from_url(self, mp: Any, url: str) -> tuple[MemoryBucket, str]:
        match = re.fullmatch(r"mem://([a-z0-9-]+)(?:/(.*))?", url)
        if match is None:
            raise ConfigurationError(f"'{url}' is not mem://<bucket>/<prefix>")
        bucket = self.buckets.setdefault(match[1], MemoryBucket(match[1]))
        return bucket, match[2] or ""

    def from_mount(self, mp: Any, config: Any) -> MemoryBucket:
        return self.buckets.setdefault(config["bucket"], MemoryBucket(config["bucket"]))

    @hookimpl
    def mailproxy_register_storage_backends(self) -> list[StorageBackendSpec]:
        return [
            StorageBackendSpec(
                "mem", self.from_mount, url_schemes=("mem",), url_factory=self.from_url
            )
        ]


@pytest.mark.requires_plugins("smtp")
async def test_storage_url_schemes_claimed_by_a_backend(serve_app, smtp_server):
    cloud = MemoryCloud()
    server = await smtp_server()
    async with serve_app({"mem_cloud": cloud}) as live:
        config = {"enabled": True, "max_size_mb": 0.001, "action": "rewrite"}
        for url, problem in [
            ("gopher://files/x", "no storage backend handles 'gopher://' URLs (available: "),
            ("mem://Bad_Bucket", "'mem://Bad_Bucket' is not mem://<bucket>/<prefix>"),
            ("just-a-name", "is not a storage URL: give file:///<directory>, <mount>:<prefix>"),
        ]:
            body = {"id": "acme", "large_file_config": {**config, "storage_url": url}}
            refused = await live.post("/tenants/add", body)
            assert refused.status_code == 422, refused.text
            (error,) = refused.json()["errors"]
            assert error["field"] == "large_file_config.storage_url"
            assert problem in error["message"]
        assert (await live.get("/tenants/get", tenant_id="acme")).status_code == 404

        good = {**config, "storage_url": "mem://big-files/acme/out"}
        added = await live.post("/tenants/add", {"id": "acme", "large_file_config": good})
        assert added.status_code == 200, added.text
        updated = await live.post(
            "/tenants/update",
            {"tenant_id": "acme", "large_file_config": {**good, "storage_url": "ftp://x/y"}},
        )
        assert updated.status_code == 422 and "'ftp://'" in updated.text
        account = {"id": "main", "tenant_id": "acme", "host": "127.0.0.1", "port": server.port}
        assert (await live.post("/accounts/add", {**account, "use_tls": False})).status_code == 200

        content = b"%PDF-" + b"x" * 4000
        message = {
            "id": "m1",
            "tenant_id": "acme",
            "account_id": "main",
            "from": "shop@acme.example",
            "to": "bob@example.com",
            "subject": "your invoice",
            "body": "Attached.",
            "attachments": [
                {
                    "filename": "invoice.pdf",
                    "storage_path": "base64:" + base64.b64encode(content).decode(),
                    "fetch_mode": "base64",
                }
            ],
        }
        queued = await live.post("/messages/add_batch", {"messages": [message]})
        assert queued.json()["queued"] == 1, queued.text
        await dispatch_now(live.mp)
        got = await live.get("/messages/get", message_id="m1", tenant_id="acme")
        assert got.json()["status"] == "sent", got.text

    (path, stored), *others = cloud.buckets["big-files"].files.items()
    assert others == [] and stored == content
    assert path.startswith("acme/out/") and path.endswith("/invoice.pdf")
    (received,) = server.handler.messages
    mime = email.message_from_bytes(received.content, policy=email.policy.default)
    assert isinstance(mime, EmailMessage) and not list(mime.iter_attachments())
    body = mime.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert f"https://big-files.mem.example/{path}?expires=" in text


def test_a_storage_url_scheme_is_claimed_by_one_backend_only(tmp_path):
    class Rival:
        @hookimpl
        def mailproxy_register_storage_backends(self) -> list[StorageBackendSpec]:
            cloud = MemoryCloud()
            return [
                StorageBackendSpec(
                    "rival", cloud.from_mount, url_schemes=("MEM",), url_factory=cloud.from_url
                )
            ]

    class FileThief:
        @hookimpl
        def mailproxy_register_storage_backends(self) -> list[StorageBackendSpec]:
            cloud = MemoryCloud()
            return [
                StorageBackendSpec(
                    "thief", cloud.from_mount, url_schemes=("file",), url_factory=cloud.from_url
                )
            ]

    settings = Settings.from_values(db=str(tmp_path / "mp.db"), api_token="admin-token")
    with pytest.raises(PluginError, match="scheme 'mem' is claimed by both storage backend"):
        build_kernel(settings, extra_plugins={"a": MemoryCloud(), "b": Rival()})
    with pytest.raises(PluginError, match="cannot claim the URL scheme 'file'"):
        build_kernel(settings, extra_plugins={"thief": FileThief()})
    with pytest.raises(TypeError, match="claims URL schemes without a url_factory"):
        StorageBackendSpec("half", MemoryCloud().from_mount, url_schemes=("half",))


def test_a_view_extension_names_a_known_entity(tmp_path):
    async def extend(mp: Any, views: Any) -> list[dict[str, Any]]:
        return [{} for _ in views]

    class Wrong:
        @hookimpl
        def mailproxy_register_view_extensions(self) -> list[ViewExtensionSpec]:
            return [ViewExtensionSpec("x", "messages", extend)]  # type: ignore[arg-type]

    settings = Settings.from_values(db=str(tmp_path / "mp.db"), api_token="admin-token")
    with pytest.raises(
        PluginError, match="entity must be one of tenants, accounts, not 'messages'"
    ):
        build_kernel(settings, extra_plugins={"wrong": Wrong()})
