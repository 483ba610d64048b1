"""``storage`` attachments: ``<mount>:<path>`` through the tenant's mounts (``local`` backend)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.requires_plugins("attachments", "storage_local", "smtp", "auth_token")


@pytest.fixture
async def mount(mail, tmp_path):
    base = tmp_path / "mount"
    (base / "docs").mkdir(parents=True)
    (base / "docs" / "a.pdf").write_bytes(b"%PDF a")
    await mail.mount("HOME", "local", {"base_path": str(base)})
    return base


async def test_inferred_mount_path_is_read_from_the_mount(mail, mount):
    await mail.deliver(mail.message("m1", {"filename": "a.pdf", "storage_path": "HOME:docs/a.pdf"}))
    assert mail.attachments_of() == [("a.pdf", "application/pdf", b"%PDF a")]


async def test_escapes_from_the_mount_fail_permanently(mail, mount, tmp_path):
    (tmp_path / "secret.txt").write_bytes(b"secret")
    (mount / "docs" / "link").symlink_to(tmp_path / "secret.txt")
    paths = {"dotdot": "HOME:docs/../../secret.txt", "symlink": "HOME:docs/link"}
    await mail.deliver(
        *(mail.message(mid, {"filename": "s.txt", "storage_path": p}) for mid, p in paths.items())
    )
    assert await mail.history("dotdot") == [
        (
            "error",
            "Attachment fetch failed for s.txt: storage path 'docs/../../secret.txt' must not "
            "contain '..'",
        )
    ]
    assert await mail.history("symlink") == [
        (
            "error",
            "Attachment fetch failed for s.txt: storage path 'docs/link' leaves the storage's "
            "base directory",
        )
    ]


async def test_missing_file_in_a_mount_is_permanent(mail, mount):
    await mail.deliver(mail.message("m1", {"filename": "b.pdf", "storage_path": "HOME:docs/b.pdf"}))
    assert await mail.history("m1") == [
        ("error", "Attachment fetch failed for b.pdf: no file 'docs/b.pdf' in storage 'HOME'")
    ]


async def test_unknown_mount_named_explicitly_is_permanent(mail, mount, file_server):
    await mail.deliver(
        mail.message(
            "m1", {"filename": "a.pdf", "storage_path": "NOPE:docs/a.pdf", "fetch_mode": "storage"}
        )
    )
    assert await mail.history("m1") == [
        ("error", "Attachment fetch failed for a.pdf: storage 'NOPE' not found for tenant 'acme'")
    ]
    assert file_server.requests == []


async def test_unknown_mount_without_fetch_mode_goes_to_the_endpoint(mail, mount, file_server):
    file_server.file("/mail-proxy/attachments", b"from the client app")
    await mail.deliver(mail.message("m1", {"filename": "a.txt", "storage_path": "NOPE:docs/a"}))
    assert mail.attachments_of() == [("a.txt", "text/plain", b"from the client app")]


async def test_a_mount_outside_the_allowed_roots_is_refused(mail):
    added = await mail.client.post(
        "/storages/add",
        tenant_id="acme",
        name="ETC",
        protocol="local",
        config={"base_path": "/etc"},
    )
    assert added.status == 422, added.json
    assert added.json["errors"] == [
        {
            "field": "config",
            "message": "local storage base_path '/etc' is outside [plugins.storage_local] "
            "allowed_roots",
            "type": "value_error",
        }
    ]
    assert (await mail.client.get("/storages/list", tenant_id="acme")).json == []


async def test_a_stored_mount_outside_the_allowed_roots_fails_at_use(mail):
    # Stored while another allowed_roots was configured: the backend refuses it when used.
    config = mail.mp.secrets.encrypt('{"base_path": "/etc"}')
    await mail.mp.repos.storages.upsert("acme", "ETC", protocol="local", config=config)
    mail.mp.directory_changed()
    await mail.deliver(mail.message("m1", {"filename": "p", "storage_path": "ETC:passwd"}))
    assert await mail.history("m1") == [
        (
            "error",
            "Attachment fetch failed for p: storage 'ETC': local storage base_path '/etc' is "
            "outside [plugins.storage_local] allowed_roots",
        )
    ]
