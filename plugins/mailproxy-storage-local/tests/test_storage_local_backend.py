"""The ``local`` backend: files under the base directory, never outside it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mailproxy_core import ConfigurationError, InvalidInput, Settings
from mailproxy_core.kernel import build_kernel
from mailproxy_storage_local import LocalStorage


def test_storage_local_is_installed(tmp_path: Path) -> None:
    mp = build_kernel(Settings.from_values(db=str(tmp_path / "x.db")))
    info = {p.name: p for p in mp.plugins}["storage_local"]
    assert info.status == "loaded"
    assert info.distribution == "mailproxy-storage-local"
    assert "local" in mp.registry.storage_backends
    assert "storage_local_download" in mp.registry.routes
    assert "storage_local_link_cleanup" in mp.registry.background_tasks


async def test_write_read_exists_delete(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "base")
    await storage.write("a/b/c.txt", b"hello")
    assert await storage.exists("a/b/c.txt")
    assert await storage.read("a/b/c.txt") == b"hello"
    await storage.write("a/b/c.txt", b"again")  # replaced atomically, no temporary left
    assert os.listdir(tmp_path / "base" / "a" / "b") == ["c.txt"]
    await storage.delete("a/b/c.txt")
    assert not await storage.exists("a/b/c.txt")
    assert os.listdir(tmp_path / "base") == []  # emptied directories removed
    await storage.delete("a/b/c.txt")  # deleting twice is fine
    with pytest.raises(FileNotFoundError):
        await storage.read("a/b/c.txt")


async def test_a_capped_read_stops_one_byte_past_the_cap(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "base")
    await storage.write("big.bin", bytes(range(256)) * 4)
    assert await storage.read("big.bin", max_bytes=10) == bytes(range(11))
    assert len(await storage.read("big.bin", max_bytes=5000)) == 1024
    assert len(await storage.read("big.bin")) == 1024


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("../outside.txt", "must not contain '..'"),
        ("a/../../outside.txt", "must not contain '..'"),
        ("/etc/passwd", "must be a relative file path"),
        ("", "must be a relative file path"),
        (".mailproxy-link-key", "names a reserved entry"),
        (".mailproxy-links/123-abc", "names a reserved entry"),
    ],
)
async def test_unsafe_paths_are_refused(tmp_path: Path, path: str, reason: str) -> None:
    (tmp_path / "outside.txt").write_bytes(b"secret")
    storage = LocalStorage(tmp_path / "base")
    with pytest.raises(InvalidInput, match=reason):
        await storage.read(path)
    with pytest.raises(InvalidInput, match=reason):
        await storage.write(path, b"x")
    assert (tmp_path / "outside.txt").read_bytes() == b"secret"


async def test_symlink_escapes_are_refused_for_reading_and_writing(tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_bytes(b"secret")
    (base / "file-link").symlink_to(tmp_path / "outside" / "secret.txt")
    (base / "dir-link").symlink_to(tmp_path / "outside", target_is_directory=True)
    storage = LocalStorage(base)
    for path in ("file-link", "dir-link/secret.txt"):
        with pytest.raises(InvalidInput, match="leaves the storage's base directory"):
            await storage.read(path)
    with pytest.raises(InvalidInput, match="leaves the storage's base directory"):
        await storage.write("dir-link/new.txt", b"x")
    assert not (tmp_path / "outside" / "new.txt").exists()


async def test_a_symlink_inside_the_base_is_fine(tmp_path: Path) -> None:
    base = tmp_path / "base"
    (base / "real").mkdir(parents=True)
    (base / "real" / "f.txt").write_bytes(b"ok")
    (base / "alias").symlink_to(base / "real", target_is_directory=True)
    assert await LocalStorage(base).read("alias/f.txt") == b"ok"


def test_config_needs_an_absolute_base_path() -> None:
    with pytest.raises(ConfigurationError, match=r"needs config\.base_path"):
        LocalStorage.from_config({})
    with pytest.raises(ConfigurationError, match="must be an absolute directory path"):
        LocalStorage.from_config({"base_path": "relative/dir"})


async def test_url_is_none_without_a_public_base_url(tmp_path: Path) -> None:
    storage = LocalStorage.from_config({"base_path": str(tmp_path)})
    await storage.write("f.txt", b"x")
    assert await storage.url("f.txt", 60) is None


@pytest.mark.requires_plugins("storage_local")
async def test_the_kernel_builds_local_mounts(mp_kernel, tmp_path: Path) -> None:
    storage = mp_kernel.storage("local", {"base_path": str(tmp_path)})
    assert isinstance(storage, LocalStorage)
    await storage.write("x.txt", b"via the kernel")
    assert (tmp_path / "x.txt").read_bytes() == b"via the kernel"


@pytest.mark.requires_plugins("storage_local")
async def test_mounts_must_lie_inside_the_allowed_roots(mp_kernel, tmp_path: Path) -> None:
    (tmp_path / "inside").mkdir()
    (tmp_path / "inside" / "escape").symlink_to("/etc", target_is_directory=True)
    for base in ("/etc", str(tmp_path / "inside" / "escape")):
        with pytest.raises(ConfigurationError, match="is outside"):
            mp_kernel.storage("local", {"base_path": base})


class TestWithoutAllowedRoots:
    @pytest.fixture
    def storage_local_settings(self):
        return {}

    @pytest.mark.requires_plugins("storage_local")
    async def test_the_backend_is_off(self, mp_kernel, tmp_path: Path) -> None:
        with pytest.raises(ConfigurationError, match="the local storage backend is off"):
            mp_kernel.storage("local", {"base_path": str(tmp_path)})
