"""The attachment size cap holds while reading from a cloud mount: an object over the cap is
refused with the size reason after at most cap + 1 bytes came over the wire.

The stores are reached through the recording proxy of ``conftest.py``, which counts the body
bytes each answer carried: that is what the relay downloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.requires_plugins("ee_cloud_storage", "attachments", "smtp", "auth_token")

CAP_MB = 0.1
CAP = int(CAP_MB * 1024 * 1024)  # 104,857 bytes
HUGE = bytes(range(256)) * 8192  # 2 MiB, twenty times the cap
SMALL = b"%PDF-1.7 " + bytes(range(256)) * 100  # under the cap


@pytest.fixture
def attachments_section(tmp_path: Path) -> dict[str, Any]:
    return {"timeout": 5.0, "disk_cache_dir": str(tmp_path / "cache"), "max_size_mb": CAP_MB}


@pytest.fixture(params=["s3", "azure"])
def proxied(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any], Any, Any]:
    """(protocol, mount config through the proxy, put(key, data), proxy) on a fresh bucket."""
    if request.param == "s3":
        s3 = request.getfixturevalue("moto_s3")
        proxy = request.getfixturevalue("throttling_s3")
        config = s3.config(endpoint_url=proxy.endpoint)
        return "s3", config, lambda key, data: s3.put(config["bucket"], key, data), proxy
    azurite, proxy = request.getfixturevalue("proxied_azurite")
    config = azurite.config(endpoint_url=f"{proxy.endpoint}/devstoreaccount1")
    return "azure", config, lambda key, data: azurite.put(config["container"], key, data), proxy


async def test_an_object_over_the_cap_is_refused_after_cap_plus_one_bytes(
    mail: Any, proxied: tuple[str, dict[str, Any], Any, Any]
) -> None:
    protocol, config, put, proxy = proxied
    put("huge.bin", HUGE)
    put("small.pdf", SMALL)
    await mail.mount("DOCS", protocol, config)

    await mail.deliver(
        mail.message("big", {"filename": "huge.bin", "storage_path": "DOCS:huge.bin"})
    )
    assert await mail.history("big") == [
        ("error", "Attachment fetch failed for huge.bin: larger than the limit of 0.1 MB")
    ]
    downloaded = proxy.bytes_served("GET")
    assert 0 < downloaded <= CAP + 1, (downloaded, proxy.served)

    # a file under the cap still arrives whole, through the same capped read
    await mail.deliver(mail.message("ok", {"filename": "s.pdf", "storage_path": "DOCS:small.pdf"}))
    assert [kind for kind, _ in await mail.history("ok")] == ["sent"]
    assert mail.attachments_of() == [("s.pdf", "application/pdf", SMALL)]


async def test_an_object_over_the_cap_from_gcs_is_refused(
    mail: Any, gcs_emulator: Any, gcs_service_account: dict[str, str]
) -> None:
    config = gcs_emulator.config(gcs_service_account)
    gcs_emulator.put(config["bucket"], "huge.bin", HUGE)
    await mail.mount("DOCS", "gcs", config)
    await mail.deliver(
        mail.message("big", {"filename": "huge.bin", "storage_path": "DOCS:huge.bin"})
    )
    assert await mail.history("big") == [
        ("error", "Attachment fetch failed for huge.bin: larger than the limit of 0.1 MB")
    ]
