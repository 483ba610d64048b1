"""Signed ``/download`` links: valid, tampered, expired; keys; expired files deleted."""

from __future__ import annotations

import base64
import os
import stat
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from mailproxy_core import MailProxy
from mailproxy_storage_local import LocalStorage, delete_expired_links
from mailproxy_storage_local.links import KEY_FILE, LinkSigner

pytestmark = pytest.mark.requires_plugins("storage_local", "auth_token")

CONTENT = b"%PDF large report\n" * 1000


async def linked(mp: MailProxy, base: Path, path: str = "d1/report.pdf", ttl: int = 3600) -> str:
    storage = mp.storage(
        "local", {"base_path": str(base), "public_base_url": "https://f.example/x"}
    )
    await storage.write(path, CONTENT)
    url = await storage.url(path, ttl)
    assert url is not None and url.startswith("https://f.example/x/download/")
    return urlsplit(url).path.removeprefix("/x")


async def get(app, path: str, token: str | None = "test-admin-token"):
    headers = {"X-API-Token": token} if token else {}
    response = await app.test_client().get(path, headers=headers)
    return response.status_code, await response.get_data(), response


async def test_a_valid_link_serves_the_file(mp_app, mp_kernel, tmp_path):
    path = await linked(mp_kernel, tmp_path / "files")
    status, body, response = await get(mp_app, path)
    assert status == 200 and body == CONTENT
    assert response.headers["Content-Type"] == "application/pdf"
    assert "attachment" in response.headers["Content-Disposition"]
    assert "report.pdf" in response.headers["Content-Disposition"]


async def test_tokens_do_not_show_the_directory(mp_kernel, tmp_path):
    path = await linked(mp_kernel, tmp_path / "files")
    token = path.split("/")[2]
    payload = base64.urlsafe_b64decode(token.split(".")[0] + "==")
    assert b"files" not in payload and payload.startswith(b"ENC:")


async def test_tampered_links_are_not_found(mp_app, mp_kernel, tmp_path):
    path = await linked(mp_kernel, tmp_path / "files")
    _, _, token, name = path.split("/")
    payload, signature = token.split(".")
    flipped = ("0" if signature[0] != "0" else "1") + signature[1:]
    other = await linked(mp_kernel, tmp_path / "files", "d2/other.pdf")
    other_payload = other.split("/")[2].split(".")[0]
    for bad in (
        f"/download/{payload}.{flipped}/{name}",  # signature changed
        f"/download/{other_payload}.{signature}/{name}",  # payload of another link
        f"/download/{payload}.{signature}/other.pdf",  # another file name
        f"/download/{payload}/{name}",  # no signature
        f"/download/garbage.{signature}/{name}",
    ):
        status, body, _ = await get(mp_app, bad)
        assert status == 404, bad
        assert b"not found" in body


async def test_an_expired_link_is_gone(mp_app, mp_kernel, tmp_path, monkeypatch):
    path = await linked(mp_kernel, tmp_path / "files", ttl=60)
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 120)
    status, body, _ = await get(mp_app, path)
    assert status == 410
    assert b"link_expired" in body


async def test_a_deleted_file_is_not_found(mp_app, mp_kernel, tmp_path):
    path = await linked(mp_kernel, tmp_path / "files")
    os.unlink(tmp_path / "files" / "d1" / "report.pdf")
    status, _, _ = await get(mp_app, path)
    assert status == 404


async def test_links_work_without_an_api_token(mp_app, mp_kernel, tmp_path):
    path = await linked(mp_kernel, tmp_path / "files")
    status, body, _ = await get(mp_app, path, token=None)
    assert status == 200 and body == CONTENT


async def test_the_link_key_is_private_and_shared_by_processes(mp_kernel, tmp_path):
    await linked(mp_kernel, tmp_path / "files")
    key_file = tmp_path / "files" / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    path = await linked(mp_kernel, tmp_path / "files", "d3/x.pdf")
    other_process = LinkSigner(mp_kernel.secrets, None)
    target = await other_process.verify(path.split("/")[2])
    assert target.path == "d3/x.pdf"
    assert target.base_path == str((tmp_path / "files").resolve())


class TestConfiguredSecret:
    @pytest.fixture
    def storage_local_settings(self, tmp_path):
        return {"link_secret": "a-long-enough-secret", "allowed_roots": [str(tmp_path)]}

    async def test_links_are_signed_with_the_secret(self, mp_app, mp_kernel, tmp_path):
        path = await linked(mp_kernel, tmp_path / "files")
        assert not (tmp_path / "files" / KEY_FILE).exists()
        assert (await get(mp_app, path))[0] == 200
        wrong = LinkSigner(mp_kernel.secrets, "another-long-secret")
        with pytest.raises(Exception, match="bad signature"):
            await wrong.verify(path.split("/")[2])


async def test_cleanup_deletes_files_whose_link_expired(mp_kernel, tmp_path):
    base = tmp_path / "files"
    await linked(mp_kernel, base, "old/a.pdf", ttl=60)
    await linked(mp_kernel, base, "new/b.pdf", ttl=7200)
    assert await delete_expired_links(mp_kernel, now=time.time() + 30) == 0
    assert await delete_expired_links(mp_kernel, now=time.time() + 120) == 1
    assert not (base / "old").exists()
    assert (base / "new" / "b.pdf").exists()
    assert len(os.listdir(base / ".mailproxy-links")) == 1


async def test_cleanup_finds_directories_named_by_tenants(mp_client, mp_kernel, tmp_path):
    base = tmp_path / "large"
    storage = LocalStorage(
        base, public_base_url="https://f.example", signer=LinkSigner(mp_kernel.secrets, None)
    )
    await storage.write("1-abc/a.bin", b"x")
    await storage.url("1-abc/a.bin", 60)  # linked by "another process": not in this kernel's roots
    config = {
        "enabled": True,
        "max_size_mb": 1,
        "action": "rewrite",
        "storage_url": f"file://{base}",
        "public_base_url": "https://f.example",
    }
    added = await mp_client.post("/tenants/add", id="acme", large_file_config=config)
    assert added.status == 200, added.json
    assert await delete_expired_links(mp_kernel, now=time.time() + 120) == 1
    assert not (base / "1-abc").exists()
