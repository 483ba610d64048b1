"""Real cloud-store emulators on loopback, and an instance with the ``ee_cloud_storage`` plugin.

- ``moto_s3``: moto's S3 server (``ThreadedMotoServer``) on 127.0.0.1, a real HTTP S3 endpoint;
- ``throttling_s3``: a loopback HTTP proxy in front of it that answers ``503 SlowDown`` to the
  next N requests (``proxy.throttle(n)``), then forwards, and records every answer with the body
  bytes it sent (``proxy.served``, ``proxy.bytes_served()``); ``proxied_azurite`` is the same
  proxy in front of Azurite;
- ``azurite``: Azurite's blob service (npm package, installed in ``.venv/azurite`` by
  ``make emulators``), started as a child process; tests needing it skip, saying why, when it
  is not installed;
- ``gcs_emulator``: ``gcp-storage-emulator`` (PyPI) in a thread, plus ``gcs_service_account``:
  a service account key made for the test whose ``token_uri`` is a loopback token server, so
  gcsfs authenticates and signs URLs without any network beyond loopback.

``mail`` (``mailproxy_core.testing.mail.Mail``) adds mounts and enqueues messages over the API
for tenant ``acme`` / account ``main`` on the SMTP sink, and reads back histories and the MIME
messages received.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mailproxy_core import MailProxy, Settings
from mailproxy_core.testing.client import ApiClient
from mailproxy_core.testing.live import free_port
from mailproxy_core.testing.mail import SMTP_TEST_SECTION, Mail
from mailproxy_core.testing.plugin import ADMIN_TOKEN
from mailproxy_core.testing.smtp import ScriptedServer

ROOT = Path(__file__).resolve().parents[3]
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
"""Azurite's well-known development account (public, documented by Microsoft)."""

S3_KEY_ID = "AKIDTESTMAILPROXY"
S3_SECRET = "s3-secret-that-must-never-show-up"


def wait_for_port(port: int, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {within} s")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# -- S3 (moto) ---------------------------------------------------------------------------------


@dataclass
class S3Server:
    endpoint: str

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=S3_KEY_ID,
            aws_secret_access_key=S3_SECRET,
            region_name="us-east-1",
        )

    def bucket(self) -> str:
        name = unique("mp")
        self.client().create_bucket(Bucket=name)
        return name

    def put(self, bucket: str, key: str, data: bytes) -> None:
        self.client().put_object(Bucket=bucket, Key=key, Body=data)

    def config(self, **extra: Any) -> dict[str, Any]:
        """A mount config of a fresh bucket, with keys."""
        return {
            "bucket": self.bucket(),
            "endpoint_url": self.endpoint,
            "region": "us-east-1",
            "access_key_id": S3_KEY_ID,
            "secret_access_key": S3_SECRET,
            **extra,
        }


TEST_EXTRA = "pip install -e 'mailproxy_ee/cloud-storage[test]'"


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[S3Server]:
    pytest.importorskip("s3fs", reason=f"s3fs is not installed: {TEST_EXTRA}")
    pytest.importorskip("moto.server", reason=f"moto's server is not installed: {TEST_EXTRA}")
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield S3Server(f"http://{host}:{port}")
    server.stop()


@dataclass(frozen=True)
class Proxied:
    """One request the proxy answered: method, path, the range asked for, status, body bytes."""

    method: str
    path: str
    range: str | None
    status: int
    body_bytes: int


class ThrottlingProxy:
    """Forwards HTTP requests to ``upstream`` as they are; answers ``503 SlowDown`` while
    throttling. Every answer is recorded in ``served`` (``body_bytes``: what it sent back).

    Responses keep the upstream's status and headers, ``Content-Length`` included: a ``HEAD``
    answer carries the object's length and no body, exactly as S3 (and Azure) send it.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.removeprefix("http://")
        self.throttled = 0
        self.remaining = 0
        self.served: list[Proxied] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                owner.serve(self)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def throttle(self, count: int) -> None:
        with self._lock:
            self.remaining = count

    def bytes_served(self, method: str = "GET") -> int:
        """Body bytes sent back to ``method`` requests so far."""
        with self._lock:
            return sum(p.body_bytes for p in self.served if p.method == method)

    def _record(self, handler: BaseHTTPRequestHandler, status: int, body_bytes: int) -> None:
        asked = handler.headers.get("Range") or handler.headers.get("x-ms-range")  # S3 / Azure
        seen = Proxied(handler.command, handler.path, asked, status, body_bytes)
        with self._lock:
            self.served.append(seen)

    def serve(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        with self._lock:
            throttle = self.remaining > 0
            if throttle:
                self.remaining -= 1
                self.throttled += 1
        if throttle:
            payload = (
                b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
                b"<Message>Please reduce your request rate.</Message></Error>"
            )
            handler.send_response(503)
            handler.send_header("Content-Type", "application/xml")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            if handler.command != "HEAD":
                handler.wfile.write(payload)
            self._record(handler, 503, 0 if handler.command == "HEAD" else len(payload))
            return
        connection = http.client.HTTPConnection(self.upstream, timeout=30)
        headers = {k: v for k, v in handler.headers.items() if k.lower() != "host"}
        headers["Host"] = self.upstream
        connection.request(handler.command, handler.path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()  # nothing for HEAD (and 204/304): its Content-Length stays
        handler.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                handler.send_header(name, value)
        if handler.command == "HEAD":
            upstream_length = response.getheader("Content-Length")
            if upstream_length is not None:
                handler.send_header("Content-Length", upstream_length)
        else:
            handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(data)
        self._record(handler, response.status, 0 if handler.command == "HEAD" else len(data))
        connection.close()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def throttling_s3(moto_s3: S3Server) -> Iterator[ThrottlingProxy]:
    proxy = ThrottlingProxy(moto_s3.endpoint)
    yield proxy
    proxy.close()


@pytest.fixture
def proxied_azurite(azurite: AzuriteServer) -> Iterator[tuple[AzuriteServer, ThrottlingProxy]]:
    """Azurite, and the proxy in front of it (mounts use ``proxy.endpoint`` + the account)."""
    parts = urllib.parse.urlsplit(azurite.endpoint)
    proxy = ThrottlingProxy(f"http://{parts.netloc}")
    yield azurite, proxy
    proxy.close()


# -- Azure (Azurite) ---------------------------------------------------------------------------


@dataclass
class AzuriteServer:
    endpoint: str
    """The blob endpoint of the development account (``http://127.0.0.1:<port>/devstoreaccount1``)."""

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
            f"AccountKey={AZURITE_KEY};BlobEndpoint={self.endpoint};"
        )

    def config(self, **extra: Any) -> dict[str, Any]:
        """A mount config of a fresh container, with the development account's key."""
        return {
            "container": self.container(),
            "account_name": AZURITE_ACCOUNT,
            "account_key": AZURITE_KEY,
            "endpoint_url": self.endpoint,
            **extra,
        }

    def container(self) -> str:
        from azure.storage.blob import BlobServiceClient

        name = unique("mp")
        with BlobServiceClient.from_connection_string(self.connection_string) as client:
            client.create_container(name)
        return name

    def put(self, container: str, name: str, data: bytes) -> None:
        from azure.storage.blob import BlobServiceClient

        with BlobServiceClient.from_connection_string(self.connection_string) as client:
            client.get_blob_client(container, name).upload_blob(data, overwrite=True)


def azurite_binary() -> Path | None:
    """``azurite-blob`` from ``MAILPROXY_TEST_AZURITE``, ``.venv/azurite`` or the PATH."""
    configured = os.environ.get("MAILPROXY_TEST_AZURITE")
    candidates = [Path(configured)] if configured else []
    candidates.append(ROOT / ".venv" / "azurite" / "node_modules" / ".bin" / "azurite-blob")
    found = shutil.which("azurite-blob")
    if found:
        candidates.append(Path(found))
    return next((path for path in candidates if path.exists()), None)


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzuriteServer]:
    pytest.importorskip("adlfs", reason=f"adlfs is not installed: {TEST_EXTRA}")
    binary = azurite_binary()
    if binary is None:
        pytest.skip(
            "Azurite is not installed: `make emulators` installs it (npm azurite 3.35.0 into "
            ".venv/azurite; needs node and npm)"
        )
    if shutil.which("node") is None:
        pytest.skip("Azurite needs Node.js, which is not installed")
    port = free_port()
    workdir = tmp_path_factory.mktemp("azurite")
    process = subprocess.Popen(
        [
            str(binary),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--location",
            str(workdir),
            "--skipApiVersionCheck",
            "--loose",
            "--silent",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        try:
            wait_for_port(port)
        except RuntimeError:
            process.kill()
            error = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise RuntimeError(f"Azurite did not start: {error.strip()}") from None
        yield AzuriteServer(f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}")
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


# -- Google Cloud Storage (gcp-storage-emulator) -----------------------------------------------


@dataclass
class GcsServer:
    endpoint: str
    emulator: Any

    def bucket(self) -> str:
        from gcp_storage_emulator.handlers import buckets

        name = unique("mp")
        buckets.create_bucket(name, self.emulator._storage)
        return name

    def put(self, bucket: str, key: str, data: bytes) -> None:
        """Upload through the emulator's JSON API (a plain HTTP request)."""
        query = urllib.parse.urlencode({"uploadType": "media", "name": key})
        request = urllib.request.Request(
            f"{self.endpoint}/upload/storage/v1/b/{bucket}/o?{query}", data=data, method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200

    def config(self, account: dict[str, str], **extra: Any) -> dict[str, Any]:
        """A mount config of a fresh bucket, with the service account key ``account``."""
        return {
            "bucket": self.bucket(),
            "endpoint_url": self.endpoint,
            "project": "mailproxy-test",
            "credentials_json": json.dumps(account),
            **extra,
        }


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[GcsServer]:
    pytest.importorskip("gcsfs", reason=f"gcsfs is not installed: {TEST_EXTRA}")
    pytest.importorskip(
        "gcp_storage_emulator", reason=f"gcp-storage-emulator is not installed: {TEST_EXTRA}"
    )
    from gcp_storage_emulator.server import create_server

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server._api.daemon = True
    server.start()
    yield GcsServer(f"http://127.0.0.1:{port}", server)
    server.stop()


class TokenServer:
    """An OAuth token endpoint on loopback: every POST gets a fresh bearer token."""

    def __init__(self) -> None:
        self.requests = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                owner.requests += 1
                body = json.dumps(
                    {
                        "access_token": f"token-{owner.requests}",
                        "expires_in": 3600,
                        "token_type": "Bearer",
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/token"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture(scope="session")
def gcs_service_account() -> Iterator[dict[str, str]]:
    """A service account key made here (its RSA key signs URLs) with a loopback token_uri."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    tokens = TokenServer()
    yield {
        "type": "service_account",
        "project_id": "mailproxy-test",
        "private_key_id": "k1",
        "private_key": pem,
        "client_email": "relay@mailproxy-test.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": tokens.url,
    }
    tokens.close()


# -- the instance --------------------------------------------------------------------------------


@pytest.fixture
def cloud_settings() -> dict[str, Any]:
    """``[plugins.ee_cloud_storage]`` of the test instance (override to change)."""
    return {"timeout": 5.0, "retries": 1}


@pytest.fixture
def attachments_section(tmp_path: Path) -> dict[str, Any]:
    """``[plugins.attachments]`` of the test instance (override to change)."""
    return {"timeout": 5.0, "disk_cache_dir": str(tmp_path / "cache")}


@pytest.fixture
def mp_settings(
    db_url: str, cloud_settings: dict[str, Any], attachments_section: dict[str, Any]
) -> Settings:
    return Settings.from_values(
        db=db_url,
        api_token=ADMIN_TOKEN,
        test_mode=True,
        max_retries=3,
        retry_delays=(0.001,),
        encryption_key=base64.b64encode(b"k" * 32).decode(),
        plugin_sections={
            "ee_cloud_storage": cloud_settings,
            "attachments": attachments_section,
            "smtp": SMTP_TEST_SECTION,
        },
    )


@pytest.fixture
async def server(smtp_server: Callable[..., Awaitable[ScriptedServer]]) -> ScriptedServer:
    return await smtp_server()


@pytest.fixture
async def mail(mp_client: ApiClient, mp_kernel: MailProxy, server: ScriptedServer) -> Mail:
    """Tenant ``acme`` with account ``main`` on the SMTP sink, and the ``Mail`` helper."""
    return await Mail.start(mp_client, mp_kernel, server)
