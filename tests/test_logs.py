"""What an operator reads: one line per delivery outcome, an access log, JSON lines on request.

Real ``mail-proxy serve`` processes; the message goes out through the built-in ``file``
transport, and the log is read from the process's stderr after SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.test_server import free_port, wait_for_health

pytestmark = pytest.mark.requires_plugins("auth_token")

BIN = Path(sys.executable).parent / "mail-proxy"
TOKEN = "log-test-token-0123456789"
H = {"X-API-Token": TOKEN}


def run_and_send(tmp_path: Path, **env_values: str) -> str:
    """Serve, queue one message on the file transport, wait for it to be sent; the stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILPROXY_", "GMP_"))}
    env.update(
        MAILPROXY_DB=str(tmp_path / "mp.db"),
        MAILPROXY_API_TOKEN=TOKEN,
        MAILPROXY_FILE__ROOT=str(tmp_path / "out"),
        **env_values,
    )
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN), "serve", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, proc)
        assert httpx.post(f"{url}/tenants/add", json={"id": "acme"}, headers=H).status_code == 200
        account = {"id": "dev", "tenant_id": "acme", "transport": "file"}
        assert httpx.post(f"{url}/accounts/add", json=account, headers=H).status_code == 200
        message = {
            "id": "hello-1",
            "tenant_id": "acme",
            "account_id": "dev",
            "from": "shop@acme.example",
            "to": "bob@example.com",
            "subject": "Hello",
            "body": "It works.",
        }
        assert httpx.post(f"{url}/messages/add", json=message, headers=H).status_code == 200
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            got = httpx.get(
                f"{url}/messages/get",
                params={"tenant_id": "acme", "message_id": "hello-1"},
                headers=H,
            ).json()
            if got["status"] == "sent":
                break
            time.sleep(0.1)
        assert got["status"] == "sent"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=15)
    return stderr


def test_text_log_has_one_line_per_outcome_and_an_access_log(tmp_path: Path) -> None:
    stderr = run_and_send(tmp_path)
    delivery = [line for line in stderr.splitlines() if " mailproxy.delivery: " in line]
    assert len(delivery) == 1, stderr
    assert (
        "INFO mailproxy.delivery: sent hello-1 tenant=acme account=dev to 1 recipient(s)"
        in (delivery[0])
    )
    access = [line for line in stderr.splitlines() if " mailproxy.access: " in line]
    assert any("POST /messages/add 200 " in line and line.endswith(" admin") for line in access)
    assert any("GET /health 200 " in line and line.endswith(" -") for line in access)
    assert TOKEN not in stderr


def test_json_lines_and_the_access_log_turned_off(tmp_path: Path) -> None:
    stderr = run_and_send(tmp_path, MAILPROXY_LOG_FORMAT="json", MAILPROXY_ACCESS_LOG="false")
    entries: list[dict[str, Any]] = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            entries.append(json.loads(line))
        else:
            assert line.startswith("mail-proxy listening on"), line  # the one announcement
    (sent,) = [e for e in entries if e["logger"] == "mailproxy.delivery"]
    assert sent["level"] == "INFO" and sent["outcome"] == "sent"
    assert (sent["message_id"], sent["tenant_id"], sent["account_id"]) == ("hello-1", "acme", "dev")
    assert isinstance(sent["duration"], float) and sent["ts"].endswith("+00:00")
    assert not [e for e in entries if e["logger"] == "mailproxy.access"]
