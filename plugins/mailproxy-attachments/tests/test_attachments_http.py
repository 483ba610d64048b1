"""``http_url`` and ``endpoint`` attachments end to end: REST enqueue → fetch → SMTP sink."""

from __future__ import annotations

import base64
import json
import socket

import pytest

from mailproxy_attachments.settings import AttachmentsSettings

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
    return {
        "timeout": 0.5,
        "disk_cache_dir": str(tmp_path / "cache"),
        "max_size_mb": 0.05,
        "allowed_networks": ["127.0.0.1/32"],
    }


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


NOT_PUBLIC = "it is not a public address"


class TestAddressPolicyDefaults:
    """No ``allowed_networks``: the defaults refuse every non-public destination."""

    @pytest.fixture
    def attachments_settings(self, tmp_path):
        return {"disk_cache_dir": str(tmp_path / "cache")}

    async def test_loopback_is_refused_by_default_after_name_resolution(self, mail, file_server):
        url = file_server.file("/a.pdf", PDF)
        for_localhost = url.replace("127.0.0.1", "localhost")  # resolved, then checked
        await mail.deliver(
            mail.message("m1", {"filename": "a.pdf", "storage_path": url}),
            mail.message("m2", {"filename": "a.pdf", "storage_path": for_localhost}),
        )
        for mid in ("m1", "m2"):
            [(kind, text)] = await mail.history(mid)
            assert kind == "error" and NOT_PUBLIC in (text or "")
            assert "allowed_networks" in (text or "")
        assert file_server.requests == []

    async def test_private_and_link_local_addresses_are_refused(self, mail):
        # nothing listens there: the refusal comes before any connection
        urls = {
            "p1": "http://10.1.2.3/a.pdf",
            "p2": "http://192.168.1.1/a.pdf",
            "p3": "http://169.254.169.254/latest/meta-data",
            "p4": "http://[::1]:9/a.pdf",
            "p5": "http://[fe80::1]/a.pdf",
            "p6": "http://0.0.0.0:5432/",
        }
        await mail.deliver(
            *(
                mail.message(mid, {"filename": "a.pdf", "storage_path": url})
                for mid, url in urls.items()
            )
        )
        for mid in urls:
            [(kind, text)] = await mail.history(mid)
            assert kind == "error" and NOT_PUBLIC in (text or ""), (mid, text)

    async def test_refusal_texts_do_not_tell_what_answered(self, mail, file_server):
        # a port with a server and a port without one give the same text (port aside)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            closed_port = sock.getsockname()[1]
        listening = file_server.file("/x", PDF)
        closed = f"http://127.0.0.1:{closed_port}/x"
        await mail.deliver(
            mail.message("m1", {"filename": "a.pdf", "storage_path": listening}),
            mail.message("m2", {"filename": "a.pdf", "storage_path": closed}),
        )
        [(_, open_text)] = await mail.history("m1")
        [(_, closed_text)] = await mail.history("m2")
        assert open_text and closed_text
        assert open_text.replace(str(file_server.port), "P") == closed_text.replace(
            str(closed_port), "P"
        )
        assert file_server.requests == []


class TestAllowedNetworks:
    """``allowed_networks`` opens exactly the listed networks, never the service's own port."""

    @pytest.fixture
    def attachments_settings(self, tmp_path):
        return {"disk_cache_dir": str(tmp_path / "cache"), "allowed_networks": ["127.0.0.1/32"]}

    async def test_an_allowed_address_is_fetched_by_name_and_by_address(self, mail, file_server):
        url = file_server.file("/a.pdf", PDF)
        await mail.deliver(
            mail.message("m1", {"filename": "a.pdf", "storage_path": url}),
            mail.message(
                "m2", {"filename": "a.pdf", "storage_path": url.replace("127.0.0.1", "localhost")}
            ),
        )
        for mid in ("m1", "m2"):
            assert [kind for kind, _ in await mail.history(mid)] == ["sent"]

    async def test_every_redirect_hop_is_checked(self, mail, file_server, reply):
        # 127.0.0.2 is loopback too, but not in allowed_networks
        elsewhere = f"http://127.0.0.2:{file_server.port}/secret"
        file_server.route("/hop", reply(302, headers={"Location": elsewhere}))
        file_server.file("/secret", PDF)
        url = file_server.url("/hop")
        await mail.deliver(mail.message("m1", {"filename": "a.pdf", "storage_path": url}))
        [(kind, text)] = await mail.history("m1")
        assert kind == "error" and NOT_PUBLIC in (text or "") and "127.0.0.2" in (text or "")
        assert [seen.path for seen in file_server.requests] == ["/hop"]


class TestOwnAddress:
    """The service's own port on its own addresses is refused even where it is allowed."""

    @pytest.fixture
    def attachments_settings(self, tmp_path):
        return {
            "disk_cache_dir": str(tmp_path / "cache"),
            "allowed_networks": ["127.0.0.0/8"],
            "allow_private_addresses": True,
        }

    @pytest.fixture
    def mp_settings(self, mp_settings, file_server):
        # the file server stands in for the service's own API: same address, same port
        return mp_settings.model_copy(update={"port": file_server.port})

    async def test_the_service_own_port_is_refused(self, mail, file_server):
        own = file_server.file("/metrics", b"mailproxy_messages_total 3")
        await mail.deliver(
            mail.message("m1", {"filename": "m.txt", "storage_path": own}),
            mail.message(
                "m2",
                {"filename": "m.txt", "storage_path": own.replace("127.0.0.1", "localhost")},
            ),
        )
        for mid in ("m1", "m2"):
            [(kind, text)] = await mail.history(mid)
            assert kind == "error" and "this service's own address" in (text or "")
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


def test_allowed_networks_accept_cidr_and_addresses_and_refuse_anything_else():
    settings = AttachmentsSettings.model_validate(
        {"allowed_networks": "10.20.0.0/16, 192.168.1.20,fd00::/8"}
    )
    assert [str(network) for network in settings.networks()] == [
        "10.20.0.0/16",
        "192.168.1.20/32",
        "fd00::/8",
    ]
    assert AttachmentsSettings().allow_private_addresses is False
    assert AttachmentsSettings().networks() == ()
    with pytest.raises(ValueError, match="'intranet' is not a network or address"):
        AttachmentsSettings.model_validate({"allowed_networks": ["intranet"]})
