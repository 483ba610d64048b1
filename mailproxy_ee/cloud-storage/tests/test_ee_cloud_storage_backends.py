"""The ``s3``, ``gcs`` and ``azure`` backends against moto, gcp-storage-emulator and Azurite."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from mailproxy_core import InvalidInput, MailProxy, Settings
from mailproxy_core.kernel import build_kernel
from mailproxy_ee_cloud_storage import CloudStorage, StorageRefused, StorageUnavailable
from mailproxy_ee_cloud_storage.state import state_of

CONTENT = bytes(range(256)) * 300  # 76,800 bytes, every byte value

pytestmark = pytest.mark.requires_plugins("ee_cloud_storage")


def test_ee_cloud_storage_is_installed(tmp_path: Path) -> None:
    mp = build_kernel(Settings.from_values(db=str(tmp_path / "x.db")))
    info = {p.name: p for p in mp.plugins}["ee_cloud_storage"]
    assert info.status == "loaded"
    assert info.distribution == "mailproxy-ee-cloud-storage"
    for protocol in ("s3", "gcs", "azure"):
        assert protocol in mp.registry.storage_backends
    assert "ee_cloud_storage_sweep" in mp.registry.background_tasks


@pytest.fixture
async def kernel(tmp_path: Path) -> AsyncIterator[MailProxy]:
    settings = Settings.from_values(
        db=str(tmp_path / "x.db"),
        plugin_sections={"ee_cloud_storage": {"timeout": 5.0, "retries": 1}},
    )
    mp = build_kernel(settings)
    yield mp
    await state_of(mp).pool.aclose()


@pytest.fixture(params=["s3", "gcs", "azure"])
def store(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """(protocol, mount config) of a fresh bucket or container on that protocol's emulator."""
    if request.param == "s3":
        return "s3", request.getfixturevalue("moto_s3").config(prefix="tenant/docs")
    if request.param == "gcs":
        gcs = request.getfixturevalue("gcs_emulator")
        account = request.getfixturevalue("gcs_service_account")
        return "gcs", {
            "bucket": gcs.bucket(),
            "prefix": "tenant/docs",
            "endpoint_url": gcs.endpoint,
            "project": "mailproxy-test",
            "credentials_json": json.dumps(account),
        }
    return "azure", request.getfixturevalue("azurite").config(prefix="tenant/docs")


def backend(mp: MailProxy, store: tuple[str, dict[str, Any]]) -> CloudStorage:
    storage = mp.storage(store[0], store[1])
    assert isinstance(storage, CloudStorage)
    return storage


def http_get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


async def test_write_read_exists_delete(kernel: MailProxy, store: tuple[str, dict[str, Any]]):
    storage = backend(kernel, store)
    assert not await storage.exists("a/b.bin")
    await storage.write("a/b.bin", CONTENT)
    assert await storage.exists("a/b.bin")
    assert await storage.read("a/b.bin") == CONTENT
    await storage.write("a/b.bin", b"replaced")
    assert await storage.read("a/b.bin") == b"replaced"
    await storage.delete("a/b.bin")
    assert not await storage.exists("a/b.bin")
    await storage.delete("a/b.bin")  # deleting twice is fine
    with pytest.raises(FileNotFoundError, match=r"no object 'a/b\.bin' in"):
        await storage.read("a/b.bin")


async def test_objects_live_under_the_prefix(kernel: MailProxy, store: tuple[str, dict[str, Any]]):
    storage = backend(kernel, store)
    await storage.write("x.txt", b"under the prefix")
    other = dict(store[1], prefix="")
    assert await backend(kernel, (store[0], other)).read("tenant/docs/x.txt") == b"under the prefix"


async def test_read_with_a_cap_downloads_at_most_one_byte_more(
    kernel: MailProxy, store: tuple[str, dict[str, Any]]
):
    storage = backend(kernel, store)
    await storage.write("big.bin", CONTENT)
    await storage.write("empty.bin", b"")
    assert await storage.read("big.bin", max_bytes=1000) == CONTENT[:1001]
    assert await storage.read("big.bin", max_bytes=len(CONTENT)) == CONTENT
    assert await storage.read("empty.bin", max_bytes=10) == b""


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("../outside.txt", "must not contain '..'"),
        ("a/../../outside.txt", "must not contain '..'"),
        ("/etc/passwd", "must be a relative file path"),
        ("", "must be a relative file path"),
    ],
)
async def test_unsafe_paths_are_refused_before_any_request(
    kernel: MailProxy, moto_s3: Any, path: str, reason: str
):
    storage = kernel.storage("s3", {"bucket": "never-contacted", "endpoint_url": moto_s3.endpoint})
    for call in (storage.read(path), storage.write(path, b"x"), storage.exists(path)):
        with pytest.raises(InvalidInput, match=reason):
            await call
    assert len(state_of(kernel).pool) == 0  # no client was even built


async def test_presigned_url_downloads_the_exact_bytes(
    kernel: MailProxy, store: tuple[str, dict[str, Any]]
):
    storage = backend(kernel, store)
    await storage.write("report 1.pdf", CONTENT)
    url = await storage.url("report 1.pdf", 600)
    assert url is not None
    status, body = http_get(url)
    assert (status, body) == (200, CONTENT)
    query = parse_qs(urlsplit(url).query)
    if store[0] == "s3":
        assert query["X-Amz-Expires"] == ["600"]
    elif store[0] == "gcs":
        assert query["X-Goog-Expires"] == ["600"]
    else:
        assert "se" in query and query["sp"] == ["r"]  # a read-only SAS with an expiry
    for secret in ("secret_access_key", "account_key"):
        if secret in store[1]:
            assert store[1][secret] not in url


async def test_presigned_url_stops_working_after_expiry(kernel: MailProxy, azurite: Any):
    # Azurite checks SAS expiry. moto's S3 server and gcp-storage-emulator serve presigned
    # URLs without checking them; there the expiry is the X-Amz-Expires / X-Goog-Expires
    # asserted above, and the sweep tests show the file itself goes away after expiry.
    storage = backend(kernel, ("azure", azurite.config()))
    await storage.write("f.txt", b"short-lived")
    url = await storage.url("f.txt", 2)
    assert url is not None
    assert http_get(url) == (200, b"short-lived")
    await asyncio.sleep(3.2)
    status, _ = http_get(url)
    assert status == 403


async def test_long_links_are_capped_where_the_store_requires_it(
    kernel: MailProxy, store: tuple[str, dict[str, Any]]
):
    storage = backend(kernel, store)
    await storage.write("f.txt", b"x")
    url = await storage.url("f.txt", 30 * 86400)
    assert url is not None
    query = parse_qs(urlsplit(url).query)
    if store[0] == "s3":  # signature version 4: seven days at most
        assert query["X-Amz-Expires"] == [str(7 * 86400)]
    elif store[0] == "gcs":
        assert query["X-Goog-Expires"] == [str(7 * 86400)]
    else:  # an Azure SAS may last longer: the whole 30 days
        expiry = datetime.fromisoformat(query["se"][0].replace("Z", "+00:00"))
        assert abs(expiry.timestamp() - (time.time() + 30 * 86400)) < 120


async def test_a_missing_bucket_is_refused_permanently(kernel: MailProxy, moto_s3: Any):
    storage = kernel.storage(
        "s3",
        {
            "bucket": "no-such-bucket-here",
            "endpoint_url": moto_s3.endpoint,
            "access_key_id": "AKIDTESTMAILPROXY",
            "secret_access_key": "s3-secret-that-must-never-show-up",
        },
    )
    with pytest.raises((StorageRefused, FileNotFoundError)) as caught:
        await storage.write("x.txt", b"x")
    assert "no-such-bucket-here" in str(caught.value)


async def test_a_wrong_azure_key_is_refused_without_showing_it(kernel: MailProxy, azurite: Any):
    wrong = "V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXk="
    storage = kernel.storage("azure", azurite.config(account_key=wrong))
    with pytest.raises(StorageRefused) as caught:
        await storage.write("x.txt", b"x")
    assert "refused" in str(caught.value)
    assert wrong not in str(caught.value)


async def test_an_unreachable_store_is_transient(kernel: MailProxy):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    storage = kernel.storage(
        "s3",
        {
            "bucket": "docs",
            "endpoint_url": f"http://127.0.0.1:{port}",
            "access_key_id": "AKIDTESTMAILPROXY",
            "secret_access_key": "s3-secret-that-must-never-show-up",
        },
    )
    with pytest.raises(StorageUnavailable) as caught:
        await storage.read("x.txt")
    assert isinstance(caught.value, OSError)
    assert "s3-secret-that-must-never-show-up" not in str(caught.value)


async def test_throttling_is_transient_and_passes_once_it_stops(
    kernel: MailProxy, moto_s3: Any, throttling_s3: Any
):
    bucket = moto_s3.bucket()
    moto_s3.client().put_object(Bucket=bucket, Key="f.txt", Body=b"after the storm")
    storage = kernel.storage(
        "s3",
        {
            "bucket": bucket,
            "endpoint_url": throttling_s3.endpoint,
            "access_key_id": "AKIDTESTMAILPROXY",
            "secret_access_key": "s3-secret-that-must-never-show-up",
        },
    )
    throttling_s3.throttle(1000)
    with pytest.raises(StorageUnavailable, match="busy or failing"):
        await storage.read("f.txt")
    assert throttling_s3.throttled >= 1
    throttling_s3.throttle(0)
    assert await storage.read("f.txt") == b"after the storm"


async def test_one_client_per_credentials_reused_and_closed(kernel: MailProxy, moto_s3: Any):
    config = {
        "bucket": moto_s3.bucket(),
        "endpoint_url": moto_s3.endpoint,
        "access_key_id": "AKIDTESTMAILPROXY",
        "secret_access_key": "s3-secret-that-must-never-show-up",
    }
    first, second = kernel.storage("s3", config), kernel.storage("s3", dict(config, prefix="p"))
    await first.write("a.txt", b"a")
    await second.write("b.txt", b"b")
    pool = state_of(kernel).pool
    assert len(pool) == 1
    client = await pool.client(first.target)  # type: ignore[attr-defined]
    assert client is await pool.client(second.target)  # type: ignore[attr-defined]
    await pool.aclose()
    assert len(pool) == 0
    assert await first.read("a.txt") == b"a"  # a new client is built on demand


async def test_stores_that_cannot_sign_say_what_is_missing(
    kernel: MailProxy, gcs_emulator: Any, azurite: Any
):
    anonymous_gcs = kernel.storage(
        "gcs", {"bucket": gcs_emulator.bucket(), "endpoint_url": gcs_emulator.endpoint}
    )
    await anonymous_gcs.write("f.txt", b"x")  # the emulator takes anonymous requests
    with pytest.raises(StorageRefused, match="give the mount a service account key"):
        await anonymous_gcs.url("f.txt", 60)
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    config = azurite.config()
    sas = generate_container_sas(
        config["account_name"],
        config["container"],
        account_key=config["account_key"],
        permission=ContainerSasPermissions(read=True, write=True, delete=True, list=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    sas_only = kernel.storage(
        "azure",
        {
            "container": config["container"],
            "account_name": config["account_name"],
            "sas_token": sas,
            "endpoint_url": config["endpoint_url"],
        },
    )
    await sas_only.write("f.txt", b"written with the SAS")
    assert await sas_only.read("f.txt") == b"written with the SAS"
    with pytest.raises(StorageRefused, match="give the mount an account_key"):
        await sas_only.url("f.txt", 60)
