"""``http_url`` and ``endpoint`` attachments end to end: REST enqueue → fetch → SMTP sink."""

from __future__ import annotations

import base64
import json

import pytest

pytestmark = pytest.mark.requires_plugins("attachments", "smtp", "auth_token")

PDF = b"%PDF-1.4 invoice 42\n" * 50


async def test_http_url_attachment_is_sent_with_its_name_and_type(mail, file_server):
    url = file_server.file("/files/invoice.pdf", PDF)
    await mail.deliver(
        mail.message(
            "m1",
            {"filename": "invoice_{MD5:0123456789abcdef0123456789abcdef}.pdf", "storage_path": url},
            {"filename": "data.bin", "storage_path": url, "mime_type": "text/csv"},
            {"filename": "noextension", "storage_path": url},
        )
    )
    assert [kind for kind, _ in await mail.history("m1")] == ["sent"]
    assert mail.attachments_of() == [
        ("invoice.pdf", "application/pdf", PDF),
        ("data.bin", "text/csv", PDF),
        ("noextension", "application/octet-stream", PDF),
    ]


async def test_bearer_and_basic_auth_of_the_attachment_are_sent(mail, file_server):
    url = file_server.file("/private.pdf", PDF)
    await mail.deliver(
        mail.message(
            "m1",
            {"filename": "a.pdf", "storage_path": url, "auth": {"method": "bearer", "token": "tk"}},
        ),
        mail.message(
            "m2",
            {
                "filename": "b.pdf",
                "storage_path": url,
                "auth": {"method": "basic", "user": "ann", "password": "pw"},
            },
        ),
    )
    headers = sorted(seen.headers["Authorization"] for seen in file_server.seen("/private.pdf"))
    assert headers == [f"Basic {base64.b64encode(b'ann:pw').decode()}", "Bearer tk"]
    assert len(mail.received()) == 2


async def test_404_fails_the_message_at_once(mail, file_server):
    await mail.deliver(
        mail.message("m1", {"filename": "gone.pdf", "storage_path": file_server.url("/gone")})
    )
    assert await mail.history("m1") == [
        (
            "error",
            f"Attachment fetch failed for gone.pdf: HTTP 404 Not Found from "
            f"{file_server.url('/gone')}",
        )
    ]
    assert len(file_server.seen("/gone")) == 1
    assert mail.received() == []


async def test_403_is_permanent(mail, file_server, reply):
    file_server.route("/secret", reply(403, b"no"))
    await mail.deliver(
        mail.message("m1", {"filename": "s.pdf", "storage_path": file_server.url("/secret")})
    )
    [(kind, text)] = await mail.history("m1")
    assert kind == "error" and "HTTP 403 Forbidden" in (text or "")


async def test_500_then_200_is_retried_and_sent(mail, file_server, reply):
    file_server.route("/flaky.pdf", reply(500, b"oops"), reply(200, PDF))
    await mail.deliver(
        mail.message("m1", {"filename": "f.pdf", "storage_path": file_server.url("/flaky.pdf")})
    )
    events = await mail.history("m1")
    assert [kind for kind, _ in events] == ["deferred", "sent"]
    assert events[0][1] == (
        "Attachment fetch failed for f.pdf: HTTP 500 Internal Server Error from "
        f"{file_server.url('/flaky.pdf')}"
    )
    assert mail.attachments_of() == [("f.pdf", "application/pdf", PDF)]


@pytest.fixture
def attachments_settings(tmp_path):
    return {"timeout": 0.5, "disk_cache_dir": str(tmp_path / "cache"), "max_size_mb": 0.05}


async def test_slow_server_times_out_transiently(mail, file_server, reply):
    file_server.route("/slow.pdf", reply(200, PDF, delay=1.5), reply(200, PDF))
    await mail.deliver(
        mail.message("m1", {"filename": "s.pdf", "storage_path": file_server.url("/slow.pdf")})
    )
    events = await mail.history("m1")
    assert [kind for kind, _ in events] == ["deferred", "sent"]
    assert "did not answer within 0.5 s" in (events[0][1] or "")


@pytest.mark.parametrize("chunked", [False, True], ids=["declared", "streamed"])
async def test_oversized_body_is_a_permanent_failure(mail, file_server, reply, chunked):
    headers = {"Transfer-Encoding": "chunked"} if chunked else {}
    file_server.route("/huge.bin", reply(200, b"x" * 200_000, headers=headers))
    await mail.deliver(
        mail.message("m1", {"filename": "h.bin", "storage_path": file_server.url("/huge.bin")})
    )
    assert await mail.history("m1") == [
        ("error", "Attachment fetch failed for h.bin: larger than the limit of 0.05 MB")
    ]


async def test_redirects_are_followed_up_to_the_limit(mail, file_server, reply):
    file_server.route("/old.pdf", reply(302, headers={"Location": "/new.pdf"}))
    file_server.file("/new.pdf", PDF)
    file_server.route("/loop", reply(302, headers={"Location": "/loop"}))
    await mail.deliver(
        mail.message("m1", {"filename": "a.pdf", "storage_path": file_server.url("/old.pdf")}),
        mail.message("m2", {"filename": "b.pdf", "storage_path": file_server.url("/loop")}),
    )
    assert [kind for kind, _ in await mail.history("m1")] == ["sent"]
    [(kind, text)] = await mail.history("m2")
    assert kind == "error" and "more than 5 redirects" in (text or "")


async def test_credentials_are_not_sent_to_another_origin(mail, file_server, reply):
    other = file_server.url("/elsewhere.pdf").replace("127.0.0.1", "localhost")
    file_server.route("/hop", reply(302, headers={"Location": other}))
    file_server.file("/elsewhere.pdf", PDF)
    auth = {"method": "bearer", "token": "tk"}
    await mail.deliver(
        mail.message(
            "m1", {"filename": "a.pdf", "storage_path": file_server.url("/hop"), "auth": auth}
        )
    )
    assert [kind for kind, _ in await mail.history("m1")] == ["sent"]
    assert file_server.seen("/hop")[0].headers.get("Authorization") == "Bearer tk"
    assert "Authorization" not in file_server.seen("/elsewhere.pdf")[0].headers


class TestPrivateAddresses:
    @pytest.fixture
    def attachments_settings(self, tmp_path):
        return {"allow_private_addresses": False, "disk_cache_dir": str(tmp_path / "cache")}

    async def test_loopback_is_refused_when_private_addresses_are_off(self, mail, file_server):
        url = file_server.file("/a.pdf", PDF)
        for_localhost = url.replace("127.0.0.1", "localhost")
        await mail.deliver(
            mail.message("m1", {"filename": "a.pdf", "storage_path": url}),
            mail.message("m2", {"filename": "a.pdf", "storage_path": for_localhost}),
        )
        for mid in ("m1", "m2"):
            [(kind, text)] = await mail.history(mid)
            assert kind == "error" and "is a private or loopback address" in (text or "")
        assert file_server.requests == []


async def test_endpoint_posts_storage_path_with_the_tenant_auth(mp_client, mail, file_server):
    await mp_client.post(
        "/tenants/update",
        tenant_id="acme",
        client_auth={"method": "bearer", "token": "client-secret"},
    )
    mail.mp.directory_changed()
    file_server.file("/mail-proxy/attachments", PDF)
    await mail.deliver(mail.message("m1", {"filename": "doc.pdf", "storage_path": "doc_id=42"}))
    assert mail.attachments_of() == [("doc.pdf", "application/pdf", PDF)]
    [seen] = file_server.seen("/mail-proxy/attachments")
    assert seen.method == "POST"
    assert json.loads(seen.body) == {"storage_path": "doc_id=42"}
    assert seen.headers["Authorization"] == "Bearer client-secret"


async def test_endpoint_uses_the_tenant_path_and_the_attachment_auth(mp_client, mail, file_server):
    await mp_client.post("/tenants/update", tenant_id="acme", client_attachment_path="/api/files")
    mail.mp.directory_changed()
    file_server.file("/api/files", PDF)
    auth = {"method": "basic", "user": "u", "password": "p"}
    await mail.deliver(
        mail.message(
            "m1", {"filename": "a.pdf", "storage_path": "x", "fetch_mode": "endpoint", "auth": auth}
        )
    )
    [seen] = file_server.seen("/api/files")
    assert seen.headers["Authorization"] == f"Basic {base64.b64encode(b'u:p').decode()}"
    assert [kind for kind, _ in await mail.history("m1")] == ["sent"]


async def test_endpoint_with_an_explicit_url(mail, file_server):
    file_server.file("/other/endpoint", PDF)
    path = f"[{file_server.url('/other/endpoint')}]doc=7&v=2"
    await mail.deliver(
        mail.message("m1", {"filename": "a.pdf", "storage_path": path, "fetch_mode": "endpoint"})
    )
    [seen] = file_server.seen("/other/endpoint")
    assert json.loads(seen.body) == {"storage_path": "doc=7&v=2"}
    assert mail.attachments_of() == [("a.pdf", "application/pdf", PDF)]


class TestTenantWithoutClientApp:
    @pytest.fixture
    def tenant_fields(self):
        return {}

    async def test_endpoint_needs_a_client_base_url(self, mail):
        await mail.deliver(mail.message("m1", {"filename": "a.pdf", "storage_path": "doc=1"}))
        assert await mail.history("m1") == [
            (
                "error",
                "Attachment fetch failed for a.pdf: tenant 'acme' has no client_base_url to "
                "fetch endpoint attachments from",
            )
        ]
