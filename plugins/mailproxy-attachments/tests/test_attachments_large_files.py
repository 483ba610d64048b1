"""A tenant's ``large_file_config`` end to end: reject, warn and rewrite (API.md §5)."""

from __future__ import annotations

import logging
import re
import time

import pytest

pytestmark = pytest.mark.requires_plugins("attachments", "smtp", "auth_token")

BIG = b"B" * 300_000  # 0.3 MB: over the 0.1 MB limit below
SMALL = b"S" * 1_000


@pytest.fixture
def large_file_config():
    return {"enabled": True, "max_size_mb": 0.1, "action": "reject"}


@pytest.fixture
def tenant_fields(file_server, large_file_config):
    return {"client_base_url": file_server.url(""), "large_file_config": large_file_config}


@pytest.fixture
def files(file_server):
    return {
        "big": {"filename": "big.bin", "storage_path": file_server.file("/big.bin", BIG)},
        "small": {"filename": "small.txt", "storage_path": file_server.file("/small.txt", SMALL)},
    }


async def test_reject_fails_the_message_with_the_reference_text(mail, files):
    await mail.deliver(mail.message("m1", files["small"], files["big"]))
    assert await mail.history("m1") == [
        ("error", "Attachment 'big.bin' (0.3 MB) exceeds limit (0.1 MB)")
    ]
    assert mail.received() == []


async def test_files_under_the_limit_are_not_affected(mail, files):
    await mail.deliver(mail.message("m1", files["small"]))
    assert mail.attachments_of() == [("small.txt", "text/plain", SMALL)]


class TestWarn:
    @pytest.fixture
    def large_file_config(self):
        return {"enabled": True, "max_size_mb": 0.1, "action": "warn"}

    async def test_warn_sends_the_file_and_logs(self, mail, files, caplog):
        with caplog.at_level(logging.WARNING):
            await mail.deliver(mail.message("m1", files["big"]))
        assert mail.attachments_of() == [("big.bin", "application/octet-stream", BIG)]
        assert "Attachment 'big.bin' (0.3 MB) exceeds limit (0.1 MB); sent anyway" in caplog.text


class TestDisabled:
    @pytest.fixture
    def large_file_config(self):
        return {"enabled": False, "max_size_mb": 0.1, "action": "reject"}

    async def test_a_disabled_config_does_nothing(self, mail, files):
        await mail.deliver(mail.message("m1", files["big"]))
        assert mail.attachments_of() == [("big.bin", "application/octet-stream", BIG)]


class TestRewrite:
    pytestmark = pytest.mark.requires_plugins("storage_local")

    @pytest.fixture
    def large_file_config(self, tmp_path):
        return {
            "enabled": True,
            "max_size_mb": 0.1,
            "action": "rewrite",
            "storage_url": f"file://{tmp_path / 'large'}",
            "public_base_url": "https://files.example.com/mp",
            "file_ttl_days": 2,
        }

    async def test_large_file_is_stored_and_left_out_of_the_mail(self, mail, files, tmp_path):
        started = int(time.time())
        await mail.deliver(mail.message("m1", files["small"], files["big"]))
        assert [kind for kind, _ in await mail.history("m1")] == ["sent"]
        assert mail.attachments_of() == [("small.txt", "text/plain", SMALL)]
        [stored] = [p for p in (tmp_path / "large").rglob("big.bin")]
        assert stored.read_bytes() == BIG
        expires = int(stored.parent.name.split("-")[0])
        assert started + 2 * 86400 <= expires <= int(time.time()) + 2 * 86400

    async def test_download_link_is_appended_to_both_bodies_and_serves_the_file(
        self, mail, files, mp_app
    ):
        await mail.deliver(
            mail.message("m1", files["big"], body="Plain body.", html="<p>HTML body.</p>")
        )
        mime = mail.received()[-1]
        plain = mime.get_body(("plain",)).get_content()
        html = mime.get_body(("html",)).get_content()
        [link] = re.findall(r"https://files\.example\.com/mp(/download/\S+/big\.bin)", plain)
        assert plain.startswith("Plain body.")
        assert "big.bin (0.3 MB, until " in plain
        assert f'href="https://files.example.com/mp{link}"' in html
        got = await mp_app.test_client().get(link, headers={"X-API-Token": mail.client.token})
        assert got.status_code == 200
        assert await got.get_data() == BIG

    async def test_without_public_base_url_a_local_storage_cannot_link(
        self, mail, files, large_file_config
    ):
        config = {**large_file_config}
        del config["public_base_url"]
        await mail.client.post("/tenants/update", tenant_id="acme", large_file_config=config)
        mail.mp.directory_changed()
        await mail.deliver(mail.message("m1", files["big"]))
        [(kind, text)] = await mail.history("m1")
        assert kind == "error"
        assert text == (
            "Attachment 'big.bin' (0.3 MB) exceeds limit (0.1 MB); the storage of "
            "large_file_config gives no download link for it (set "
            "large_file_config.public_base_url for a local storage)"
        )

    async def test_storage_url_may_name_a_mount_and_a_prefix(
        self, mail, files, large_file_config, tmp_path
    ):
        base = tmp_path / "mount"
        added = await mail.client.post(
            "/storages/add",
            tenant_id="acme",
            name="FILES",
            protocol="local",
            config={"base_path": str(base)},
        )
        assert added.status == 200, added.json
        config = {**large_file_config, "storage_url": "FILES:outgoing/large"}
        await mail.client.post("/tenants/update", tenant_id="acme", large_file_config=config)
        mail.mp.directory_changed()
        await mail.deliver(mail.message("m1", files["big"]))
        assert [kind for kind, _ in await mail.history("m1")] == ["sent"]
        [stored] = list((base / "outgoing" / "large").rglob("big.bin"))
        assert stored.read_bytes() == BIG

    async def test_an_unusable_storage_url_fails_the_message(self, mail, files, large_file_config):
        config = {**large_file_config, "storage_url": "NOMOUNT:x"}
        await mail.client.post("/tenants/update", tenant_id="acme", large_file_config=config)
        mail.mp.directory_changed()
        await mail.deliver(mail.message("m1", files["big"]))
        [(kind, text)] = await mail.history("m1")
        assert kind == "error" and "storage_url 'NOMOUNT:x' is not usable" in (text or "")
