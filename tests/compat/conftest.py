"""The genro-mail-proxy 0.7.0 reference client against a running mail-proxy.

* ``reference_client`` — the module ``tools.http_client`` of the genro-mail-proxy 0.7.0 source
  distribution, downloaded from PyPI on first use into ``<venv>/reference-clients/`` (nothing of
  the reference is kept in this repository). It needs ``httpx`` and ``genro-toolbox`` (test
  dependencies).
* ``service`` — mail-proxy served over HTTP on 127.0.0.1 (``mailproxy_core.testing.live``: hypercorn
  in a background thread), on SQLite and on PostgreSQL, with the installed plugins and a real SMTP
  sink (aiosmtpd in its own thread). Test mode: messages are sent when a client calls ``run_now``.
"""

from __future__ import annotations

import asyncio
import fcntl
import importlib
import subprocess
import sys
import tarfile
import types
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailproxy_core import Settings
from mailproxy_core.testing.db import (
    TEST_SCHEMA_PREFIX,
    drop_schema,
    postgres_server_url,
    postgres_unreachable_reason,
    url_with_schema,
)
from mailproxy_core.testing.live import SmtpSink, live_service
from mailproxy_core.testing.plugin import ADMIN_TOKEN

REFERENCE = "genro-mail-proxy==0.7.0"
REFERENCE_DIR = "genro_mail_proxy-0.7.0"
CLIENT_FILE = Path("src", "tools", "http_client", "client.py")


def reference_home() -> Path:
    """Where the reference source distribution is unpacked: inside the running environment."""
    return Path(sys.prefix) / "reference-clients"


def fetch_reference() -> Path:
    """The ``src`` directory of the reference sdist, downloaded and unpacked once per venv."""
    home = reference_home()
    unpacked = home / REFERENCE_DIR
    home.mkdir(parents=True, exist_ok=True)
    # one download per venv, even with several pytest-xdist workers starting at once
    with (home / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (unpacked / CLIENT_FILE).is_file():
            _download_reference(home)
    return unpacked / "src"


def _download_reference(home: Path) -> None:
    """Download the reference sdist into ``home`` and unpack it there."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-binary",
        ":all:",
        "--no-deps",
        "--disable-pip-version-check",
        "-q",
        "-d",
        str(home),
        REFERENCE,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        pytest.fail(
            f"could not download {REFERENCE} from PyPI ({' '.join(command)}): "
            f"{done.stderr.strip()[-2000:]}"
        )
    (archive,) = home.glob(f"{REFERENCE_DIR}.tar.gz")
    with tarfile.open(archive) as tar:
        tar.extractall(home, filter="data")


@pytest.fixture(scope="session")
def reference_client() -> types.ModuleType:
    """``tools.http_client`` of genro-mail-proxy 0.7.0, imported from the downloaded sdist."""
    src = str(fetch_reference())
    if src not in sys.path:
        sys.path.insert(0, src)
    return importlib.import_module("tools.http_client")


@dataclass(frozen=True)
class Service:
    """A running mail-proxy: its URL, the admin token, the SMTP sink and its port."""

    url: str
    token: str
    sink: SmtpSink
    smtp_port: int


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    """mail-proxy over HTTP with an SMTP sink, on SQLite or PostgreSQL (one per test module)."""
    schema: str | None = None
    server_url = postgres_server_url()
    if request.param == "sqlite":
        db = str(tmp_path_factory.mktemp("compat") / "mailproxy.db")
    else:
        reason = asyncio.run(postgres_unreachable_reason(server_url))
        if reason is not None:
            pytest.skip(reason)
        schema = TEST_SCHEMA_PREFIX + uuid.uuid4().hex[:16]
        db = url_with_schema(server_url, schema)

    settings = Settings.from_values(db=db, api_token=ADMIN_TOKEN, test_mode=True)
    try:
        with live_service(settings) as live:
            yield Service(url=live.url, token=ADMIN_TOKEN, sink=live.sink, smtp_port=live.smtp_port)
    finally:
        if schema is not None:
            asyncio.run(drop_schema(server_url, schema))
