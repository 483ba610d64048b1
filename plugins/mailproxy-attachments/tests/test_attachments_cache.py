"""The shared cache: MD5 keys, tenant scoping, tiers, expiry, single flight, concurrency."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from mailproxy_attachments.cache import DiskCache, MemoryCache
from mailproxy_attachments.service import FetchService
from mailproxy_attachments.settings import AttachmentsSettings
from mailproxy_core import AttachmentRef, Tenant

PDF = b"%PDF cached content\n" * 100
MD5 = hashlib.md5(PDF).hexdigest()


class TestEndToEnd:
    pytestmark = pytest.mark.requires_plugins("attachments", "smtp", "auth_token")

    async def test_second_message_with_the_same_md5_makes_no_request(self, mail, file_server):
        url = file_server.file("/report.pdf", PDF)
        named = {"filename": f"report_{{MD5:{MD5}}}.pdf", "storage_path": url}
        await mail.deliver(mail.message("m1", named))
        await mail.deliver(mail.message("m2", named))
        await mail.deliver(
            mail.message("m3", {"filename": "r.pdf", "storage_path": url, "content_md5": MD5})
        )
        assert len(file_server.seen("/report.pdf")) == 1
        assert [a[0] for m in range(3) for a in mail.attachments_of(m)] == [
            "report.pdf",
            "report.pdf",
            "r.pdf",
        ]
        assert all(mail.attachments_of(m)[0][2] == PDF for m in range(3))

    async def test_a_wrong_md5_is_not_cached(self, mail, file_server):
        url = file_server.file("/x.pdf", PDF)
        wrong = {"filename": "x.pdf", "storage_path": url, "content_md5": "0" * 32}
        await mail.deliver(mail.message("m1", wrong))
        await mail.deliver(mail.message("m2", wrong))
        assert len(file_server.seen("/x.pdf")) == 2
        assert mail.attachments_of()[0][2] == PDF

    async def test_the_cache_is_per_tenant(self, mail, file_server):
        url = file_server.file("/shared.pdf", PDF)
        await mail.client.post("/tenants/add", id="other")
        await mail.client.post(
            "/accounts/add",
            id="main",
            tenant_id="other",
            host="127.0.0.1",
            port=mail.server.port,
            use_tls=False,
        )
        spec = {"filename": "s.pdf", "storage_path": url, "content_md5": MD5}
        await mail.deliver(mail.message("m1", spec), mail.message("m1", spec, tenant_id="other"))
        assert len(file_server.seen("/shared.pdf")) == 2

    async def test_same_file_in_many_messages_is_fetched_once(self, mail, file_server, reply):
        file_server.route("/popular.pdf", reply(200, PDF, delay=0.3))
        spec = {
            "filename": "p.pdf",
            "storage_path": file_server.url("/popular.pdf"),
            "content_md5": MD5,
        }
        await mail.deliver(*(mail.message(f"m{i}", spec) for i in range(5)))
        assert len(file_server.seen("/popular.pdf")) == 1
        assert len(mail.received()) == 5


class TestConcurrency:
    pytestmark = pytest.mark.requires_plugins("attachments", "smtp", "auth_token")

    @pytest.fixture
    def attachments_settings(self, tmp_path):
        return {
            "max_concurrent_fetches": 2,
            "disk_cache_dir": str(tmp_path / "cache"),
            "allowed_networks": ["127.0.0.1/32"],
        }

    async def test_fetches_run_concurrently_within_the_limit(self, mail, file_server, reply):
        for n in range(4):
            file_server.route(f"/f{n}", reply(200, b"x", delay=0.3))
        specs = [
            {"filename": f"{n}.txt", "storage_path": file_server.url(f"/f{n}")} for n in range(4)
        ]
        started = asyncio.get_running_loop().time()
        await mail.deliver(mail.message("m1", *specs))
        elapsed = asyncio.get_running_loop().time() - started
        assert file_server.peak == 2
        assert len(mail.attachments_of()) == 4
        assert elapsed < 1.15  # two rounds of 0.3 s, not four


def test_memory_cache_evicts_least_recently_used_and_expires():
    now = [0.0]
    cache = MemoryCache(max_bytes=10, ttl=5, clock=lambda: now[0])
    cache.put("a", b"aaaa")
    cache.put("b", b"bbbb")
    assert cache.get("a") == b"aaaa"  # a is now the most recent
    cache.put("c", b"cccc")  # 12 bytes > 10: b goes
    assert cache.get("b") is None
    assert cache.get("a") == b"aaaa" and cache.get("c") == b"cccc"
    cache.put("huge", b"x" * 11)  # larger than the whole cache: not kept
    assert cache.get("huge") is None
    now[0] = 6.0
    assert cache.get("a") is None and len(cache) == 1
    assert cache.size == 4


async def test_disk_cache_limits_size_shares_a_directory_and_expires(tmp_path):
    first = DiskCache(tmp_path / "d", max_bytes=10, ttl=60)
    await first.put("a", b"aaaa")
    await first.put("b", b"bbbb")
    assert await first.get("a") == b"aaaa"
    await first.put("c", b"cccc")
    assert await first.get("b") is None
    second = DiskCache(tmp_path / "d", max_bytes=10, ttl=60)  # another process, same directory
    assert await second.get("c") == b"cccc"
    expired = DiskCache(tmp_path / "d", max_bytes=10, ttl=0.000001)
    await asyncio.sleep(0.01)
    assert await expired.get("a") is None
    assert len(list((tmp_path / "d").iterdir())) == 1  # only c is left, no temporary files


async def test_private_disk_cache_directory_is_removed_on_close():
    cache = DiskCache(None, max_bytes=100, ttl=60)
    await cache.put("k", b"data")
    directory = cache.directory
    assert directory.exists()
    cache.close()
    assert not directory.exists()


async def test_small_files_are_also_kept_in_memory(tmp_path):
    settings = AttachmentsSettings(disk_cache_dir=tmp_path / "c", memory_cache_max_file_kb=1)
    service = FetchService(settings)
    tenant = Tenant(id="t")
    small, large = b"s" * 100, b"l" * 5000
    loads: list[bytes] = []

    def loader(data: bytes):
        async def load(limit: int) -> bytes:
            loads.append(data)
            return data

        return load

    for data in (small, large, small, large):
        ref = AttachmentRef("f", "x", content_md5=hashlib.md5(data).hexdigest())
        assert await service.fetch(ref, tenant, None, loader(data)) == data
    assert loads == [small, large]
    assert service.stats.hits == 2
    assert service.memory is not None and service.memory.size == 100
    assert service.disk is not None and service.disk.size == 5100
    service.memory = type(service.memory)(1024, 60)  # memory lost: small files come from disk
    ref = AttachmentRef("f", "x", content_md5=hashlib.md5(small).hexdigest())
    assert await service.fetch(ref, tenant, None, loader(small)) == small
    assert loads == [small, large] and service.memory.size == 100
