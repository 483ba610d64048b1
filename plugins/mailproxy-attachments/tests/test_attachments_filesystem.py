"""``filesystem`` attachments: only inside ``MAILPROXY_ATTACHMENT_ROOTS``, no escape."""

from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.requires_plugins("attachments", "smtp", "auth_token")


@pytest.fixture
def root(attachment_roots):
    (directory,) = attachment_roots
    (directory / "invoices").mkdir()
    (directory / "invoices" / "42.pdf").write_bytes(b"%PDF invoice 42")
    return directory


@pytest.fixture
def secret(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    path = outside / "secret.txt"
    path.write_bytes(b"top secret")
    return path


async def test_a_file_inside_a_root_is_sent(mail, root):
    path = str(root / "invoices" / "42.pdf")
    await mail.deliver(mail.message("m1", {"filename": "42.pdf", "storage_path": path}))
    assert mail.attachments_of() == [("42.pdf", "application/pdf", b"%PDF invoice 42")]


async def test_paths_outside_the_roots_fail_permanently(mail, root, secret):
    (root / "link.txt").symlink_to(secret)
    (root / "outdir").symlink_to(secret.parent, target_is_directory=True)
    attempts = {
        "dotdot": str(root / "invoices" / ".." / ".." / "outside" / "secret.txt"),
        "absolute": str(secret),
        "symlink": str(root / "link.txt"),
        "symlinked-dir": str(root / "outdir" / "secret.txt"),
    }
    await mail.deliver(
        *(
            mail.message(
                mid, {"filename": "s.txt", "storage_path": path, "fetch_mode": "filesystem"}
            )
            for mid, path in attempts.items()
        )
    )
    for mid, path in attempts.items():
        [(kind, text)] = await mail.history(mid)
        assert kind == "error", mid
        if mid == "dotdot":
            assert text == f"Attachment fetch failed for s.txt: '{path}' must not contain '..'"
        else:
            assert text == (
                f"Attachment fetch failed for s.txt: '{path}' is outside MAILPROXY_ATTACHMENT_ROOTS"
            )
    assert mail.received() == []


async def test_a_missing_file_is_permanent(mail, root):
    path = str(root / "invoices" / "43.pdf")
    await mail.deliver(mail.message("m1", {"filename": "43.pdf", "storage_path": path}))
    assert await mail.history("m1") == [
        (
            "error",
            f"Attachment fetch failed for 43.pdf: cannot read '{path}': No such file or directory",
        )
    ]


async def test_a_directory_is_not_a_file(mail, root):
    path = str(root / "invoices")
    await mail.deliver(mail.message("m1", {"filename": "x", "storage_path": path}))
    [(kind, text)] = await mail.history("m1")
    assert kind == "error" and "is not a regular file" in (text or "")


class TestWithoutRoots:
    @pytest.fixture
    def attachment_roots(self):
        return ()

    async def test_filesystem_mode_is_off(self, mail, tmp_path):
        path = tmp_path / "a.pdf"
        path.write_bytes(b"x")
        await mail.deliver(mail.message("m1", {"filename": "a.pdf", "storage_path": str(path)}))
        assert await mail.history("m1") == [
            (
                "error",
                "Attachment fetch failed for a.pdf: filesystem attachments are off "
                "(MAILPROXY_ATTACHMENT_ROOTS is empty)",
            )
        ]


def test_read_inside_checks_the_real_path_before_opening(tmp_path):
    from mailproxy_attachments.filesystem import read_inside
    from mailproxy_core import AttachmentError

    root = tmp_path / "root"
    root.mkdir()
    (root / "ok.txt").write_bytes(b"ok")
    (tmp_path / "out.txt").write_bytes(b"secret")
    (root / "escape").symlink_to(tmp_path)
    roots = (os.path.realpath(root),)
    assert read_inside(str(root / "ok.txt"), roots, 10) == b"ok"
    with pytest.raises(AttachmentError, match="outside"):
        read_inside(str(root / "escape" / "out.txt"), roots, 10)
    with pytest.raises(AttachmentError, match="larger than the limit") as raised:
        read_inside(str(root / "ok.txt"), roots, 1)
    assert raised.value.transient is False
