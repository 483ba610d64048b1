"""A real mail-proxy instance (``mail-proxy serve``) on loopback for the client's tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

TOKEN = "client-tests-admin-token"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a running instance whose admin token is ``TOKEN``."""
    workdir = tmp_path_factory.mktemp("service")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILPROXY_", "GMP_"))}
    env.update(MAILPROXY_DB=str(workdir / "mp.db"), MAILPROXY_API_TOKEN=TOKEN)
    port = _free_port()
    binary = Path(sys.executable).parent / "mail-proxy"
    process = subprocess.Popen(
        [str(binary), "serve", "--port", str(port)],
        env=env,
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, "mail-proxy serve exited"
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "mail-proxy serve did not start"
        time.sleep(0.2)
    yield url
    process.terminate()
    process.wait(timeout=20)
