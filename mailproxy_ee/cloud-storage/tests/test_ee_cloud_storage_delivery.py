"""End to end through the SMTP sink: attachments from cloud mounts, large files rewritten to
cloud storage with presigned links, expired files swept."""

from __future__ import annotations

import base64
import json
import logging
import re
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from mailproxy_ee_cloud_storage import sweep_expired

pytestmark = pytest.mark.requires_plugins("ee_cloud_storage", "attachments", "smtp", "auth_token")

PDF = b"%PDF-1.7 " + bytes(range(256)) * 200
BIG = bytes(range(256)) * 1200  # 300 KB: over the 0.1 MB limit below


def http_get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


@pytest.fixture(params=["s3", "gcs", "azure"])
def cloud(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any], Any]:
    """(protocol, mount config with prefix ``tenant``, put(key, data)) on a fresh bucket."""
    protocol = request.param
    if protocol == "s3":
        s3 = request.getfixturevalue("moto_s3")
        config = s3.config(prefix="tenant")
        return protocol, config, lambda key, data: s3.put(config["bucket"], key, data)
    if protocol == "gcs":
        gcs = request.getfixturevalue("gcs_emulator")
        config = gcs.config(request.getfixturevalue("gcs_service_account"), prefix="tenant")
        return protocol, config, lambda key, data: gcs.put(config["bucket"], key, data)
    azurite = request.getfixturevalue("azurite")
    config = azurite.config(prefix="tenant")
    return protocol, config, lambda key, data: azurite.put(config["container"], key, data)


async def test_attachment_from_each_store_arrives_byte_identical(mail: Any, cloud: Any) -> None:
    protocol, config, put = cloud
    put("tenant/inv/a.pdf", PDF)
    await mail.mount("DOCS", protocol, config)
    await mail.deliver(
        mail.message("m1", {"filename": "a.pdf", "storage_path": "DOCS:inv/a.pdf"}),
        mail.message(
            "m2", {"filename": "b.pdf", "storage_path": "DOCS:inv/a.pdf", "fetch_mode": "storage"}
        ),
    )
    assert [kind for kind, _ in await mail.history("m1")] == ["sent"]
    assert [kind for kind, _ in await mail.history("m2")] == ["sent"]
    received = sorted(mail.attachments_of(0) + mail.attachments_of(1))
    assert received == [("a.pdf", "application/pdf", PDF), ("b.pdf", "application/pdf", PDF)]


async def test_a_missing_object_fails_the_message_with_a_clear_reason(
    mail: Any, moto_s3: Any
) -> None:
    await mail.mount("DOCS", "s3", moto_s3.config(prefix="tenant"))
    await mail.deliver(mail.message("m1", {"filename": "b.pdf", "storage_path": "DOCS:inv/b.pdf"}))
    assert await mail.history("m1") == [
        ("error", "Attachment fetch failed for b.pdf: no file 'inv/b.pdf' in storage 'DOCS'")
    ]
    assert mail.server.handler.messages == []


async def test_a_refused_request_fails_the_message_permanently(
    mail: Any, azurite: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong_key = "V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXk="
    await mail.mount("DOCS", "azure", azurite.config(account_key=wrong_key))
    await mail.deliver(mail.message("m1", {"filename": "a.pdf", "storage_path": "DOCS:a.pdf"}))
    [(kind, reason)] = await mail.history("m1")
    assert kind == "error"
    assert reason is not None and reason.startswith("Attachment fetch failed for a.pdf: 'a.pdf'")
    assert "the store refused the request" in reason
    assert wrong_key not in reason
    assert wrong_key not in caplog.text


async def test_throttling_is_retried_and_the_message_then_sent(
    mail: Any, moto_s3: Any, throttling_s3: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    config = moto_s3.config(endpoint_url=throttling_s3.endpoint)
    moto_s3.put(config["bucket"], "a.pdf", PDF)
    await mail.mount("DOCS", "s3", config)
    throttling_s3.throttle(1)  # the first request gets 503 SlowDown
    await mail.deliver(mail.message("m1", {"filename": "a.pdf", "storage_path": "DOCS:a.pdf"}))
    events = await mail.history("m1")
    assert [kind for kind, _ in events] == ["deferred", "sent"]
    assert "the store is busy or failing" in (events[0][1] or "")
    assert throttling_s3.throttled == 1
    assert mail.attachments_of() == [("a.pdf", "application/pdf", PDF)]
    assert config["secret_access_key"] not in caplog.text


async def test_clients_are_closed_and_forgotten_at_shutdown(mail: Any, moto_s3: Any) -> None:
    from mailproxy_ee_cloud_storage.state import _STATES, state_of

    config = moto_s3.config()
    moto_s3.put(config["bucket"], "a.pdf", PDF)
    await mail.mount("DOCS", "s3", config)
    await mail.deliver(mail.message("m1", {"filename": "a.pdf", "storage_path": "DOCS:a.pdf"}))
    pool = state_of(mail.mp).pool
    assert len(pool) == 1
    await mail.mp.hooks.shutdown(mail.mp)
    assert len(pool) == 0
    assert mail.mp not in _STATES


async def rewrite_config(mail: Any, storage_url: str, ttl_days: int = 1) -> None:
    updated = await mail.client.post(
        "/tenants/update",
        tenant_id="acme",
        large_file_config={
            "enabled": True,
            "max_size_mb": 0.1,
            "action": "rewrite",
            "storage_url": storage_url,
            "file_ttl_days": ttl_days,
        },
    )
    assert updated.status == 200, updated.json
    mail.mp.directory_changed()


def big_attachment() -> dict[str, str]:
    return {"filename": "big.bin", "storage_path": "base64:" + base64.b64encode(BIG).decode()}


def link_in(mail: Any) -> str:
    plain = mail.received()[-1].get_body(("plain",)).get_content()
    [url] = re.findall(r"- big\.bin \(0\.3 MB, until [^)]+\): (\S+)", plain)
    return str(url)


async def test_large_file_rewritten_to_a_cloud_mount_links_the_exact_bytes_until_expiry(
    mail: Any, cloud: Any
) -> None:
    protocol, config, _ = cloud
    await mail.mount("DOCS", protocol, config)
    await rewrite_config(mail, "DOCS:links", ttl_days=2)
    started = int(time.time())
    await mail.deliver(mail.message("m1", big_attachment()))
    assert [kind for kind, _ in await mail.history("m1")] == ["sent"]
    assert mail.attachments_of() == []
    url = link_in(mail)
    assert re.search(r"/tenant/links/\d+-[0-9a-f]{16}/big\.bin\?", url), url
    assert http_get(url) == (200, BIG)
    expires = int(re.findall(r"/links/(\d+)-", url)[0])
    assert started + 2 * 86400 <= expires <= int(time.time()) + 2 * 86400
    for value in (config.get("secret_access_key"), config.get("account_key")):
        assert value is None or value not in url
    # The sweep deletes files whose link expired, and only those.
    assert await sweep_expired(mail.mp) == 0
    assert await sweep_expired(mail.mp, now=expires - 1) == 0
    assert http_get(url) == (200, BIG)
    assert await sweep_expired(mail.mp, now=expires + 1) == 1
    assert http_get(url)[0] == 404
    assert await sweep_expired(mail.mp, now=expires + 1) == 0


async def test_a_mount_that_cannot_sign_links_fails_the_message_saying_why(
    mail: Any, gcs_emulator: Any
) -> None:
    bucket = gcs_emulator.bucket()
    await mail.mount("GCS", "gcs", {"bucket": bucket, "endpoint_url": gcs_emulator.endpoint})
    await rewrite_config(mail, "GCS:links")
    await mail.deliver(mail.message("m1", big_attachment()))
    [(kind, reason)] = await mail.history("m1")
    assert kind == "error"
    assert reason is not None
    assert reason.startswith("Attachment 'big.bin' (0.3 MB) exceeds limit (0.1 MB)")
    assert "cannot sign download links: give the mount a service account key" in reason
    assert mail.server.handler.messages == []


async def test_the_sweep_covers_every_tenant_rewriting_to_the_cloud(
    mail: Any, moto_s3: Any, azurite: Any
) -> None:
    await mail.mount("S3", "s3", moto_s3.config())
    await rewrite_config(mail, "S3:links")
    await mail.deliver(mail.message("m1", big_attachment()))
    s3_link = link_in(mail)
    added = await mail.client.post("/tenants/add", id="beta")
    assert added.status == 200, added.json
    stored = await mail.client.post(
        "/storages/add", tenant_id="beta", name="AZ", protocol="azure", config=azurite.config()
    )
    assert stored.status == 200, stored.json
    updated = await mail.client.post(
        "/tenants/update",
        tenant_id="beta",
        large_file_config={
            "enabled": True,
            "max_size_mb": 0.1,
            "action": "rewrite",
            "storage_url": "AZ:big",
        },
    )
    assert updated.status == 200, updated.json
    storage = mail.mp.storage(
        "azure", azurite.config() | {"container": stored.json["config"]["container"]}
    )
    await storage.write(f"big/{int(time.time()) + 60}-{'0' * 16}/other.bin", b"x")
    assert await sweep_expired(mail.mp, now=time.time() + 2 * 86400) == 2
    assert http_get(s3_link)[0] == 404
    assert not await storage.exists(f"big/{int(time.time()) + 60}-{'0' * 16}/other.bin")


class TestStorageUrls:
    """``s3://``, ``gs://`` and ``az://`` storage URLs, with the plugin's own credentials."""

    @pytest.fixture
    def cloud_settings(
        self, moto_s3: Any, gcs_emulator: Any, gcs_service_account: Any, azurite: Any
    ) -> dict[str, Any]:
        return {
            "timeout": 5.0,
            "retries": 1,
            "s3": {
                "endpoint_url": moto_s3.endpoint,
                "region": "us-east-1",
                "access_key_id": "AKIDTESTMAILPROXY",
                "secret_access_key": "s3-secret-that-must-never-show-up",
            },
            "gcs": {
                "endpoint_url": gcs_emulator.endpoint,
                "project": "mailproxy-test",
                "credentials_json": json.dumps(gcs_service_account),
            },
            "azure": {"connection_string": azurite.connection_string},
        }

    @pytest.mark.parametrize("scheme", ["s3", "gs", "az"])
    async def test_large_file_rewritten_to_a_storage_url(
        self, mail: Any, moto_s3: Any, gcs_emulator: Any, azurite: Any, scheme: str
    ) -> None:
        bucket = {"s3": moto_s3.bucket, "gs": gcs_emulator.bucket, "az": azurite.container}[
            scheme
        ]()
        await rewrite_config(mail, f"{scheme}://{bucket}/big-files")
        await mail.deliver(mail.message("m1", big_attachment()))
        assert [kind for kind, _ in await mail.history("m1")] == ["sent"]
        url = link_in(mail)
        assert f"/{bucket}/big-files/" in url
        assert http_get(url) == (200, BIG)
        assert "s3-secret-that-must-never-show-up" not in url
        assert await sweep_expired(mail.mp, now=time.time() + 2 * 86400) == 1
        assert http_get(url)[0] == 404

    @pytest.mark.parametrize(
        ("url", "reason"),
        [
            ("s3://", "names no bucket"),
            ("s3://Bad_Bucket!/x", "'bucket' 'Bad_Bucket!' is not a valid name"),
            ("gs://docs/../x", "'prefix' must not contain '..'"),
            ("ftp://docs/x", "no storage backend handles 'ftp://' URLs (available: az, gs,"),
        ],
    )
    async def test_unusable_storage_urls_are_refused_when_the_tenant_is_saved(
        self, mail: Any, url: str, reason: str
    ) -> None:
        response = await mail.client.post(
            "/tenants/update",
            tenant_id="acme",
            large_file_config={
                "enabled": True,
                "max_size_mb": 1,
                "action": "rewrite",
                "storage_url": url,
            },
        )
        assert response.status == 422, response.json
        [error] = response.json["errors"]
        assert error["field"] == "large_file_config.storage_url"
        assert reason in error["message"]
