"""``mail-proxy serve`` and ``worker`` as real processes: HTTP on loopback, signals, exit codes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mailproxy_core.testing.live import free_port

pytestmark = pytest.mark.requires_plugins("auth_token")

BIN = Path(sys.executable).parent / "mail-proxy"


def wait_for_health(url: str, proc: subprocess.Popen[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited early: {proc.communicate()}")
        try:
            if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("server did not answer /health in time")


@pytest.fixture
def serve_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILPROXY_", "GMP_"))}
    env.update(MAILPROXY_DB=str(tmp_path / "mp.db"), MAILPROXY_LOG_LEVEL="INFO")
    return env


@pytest.fixture
def server(
    tmp_path: Path, serve_env: dict[str, str]
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN), "serve", "--port", str(port)],
        env=serve_env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, proc)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_serve_answers_and_stops_cleanly_on_sigterm(server):
    url, proc = server
    assert httpx.get(f"{url}/health").json() == {"status": "ok"}
    spec = httpx.get(f"{url}/openapi.json").json()
    assert "/instance/status" in spec["paths"]
    assert httpx.get(f"{url}/instance/status").status_code == 401  # secure by default

    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=15)
    assert proc.returncode == 0, stderr
    assert time.monotonic() - started < 10

    # The first start generated the admin token and printed it once on stdout, not in the logs.
    token_lines = [line for line in stdout.splitlines() if "Admin API token" in line]
    assert len(token_lines) == 1
    token = token_lines[0].rsplit(" ", 1)[-1]
    assert token not in stderr


def test_printed_token_authenticates(server):
    url, proc = server
    assert proc.stdout is not None
    line = ""
    while "Admin API token" not in line:
        line = proc.stdout.readline()
        assert line, "serve printed no admin token"
    token = line.strip().rsplit(" ", 1)[-1]
    ok = httpx.get(f"{url}/instance/get", headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200
    assert httpx.get(f"{url}/instance/get", headers={"X-API-Token": "x" + token}).status_code == 401
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=15)
    assert proc.returncode == 0


def test_serve_with_configured_token(tmp_path, serve_env):
    port = free_port()
    serve_env["MAILPROXY_API_TOKEN"] = "configured-token"
    proc = subprocess.Popen(
        [str(BIN), "serve", "--port", str(port)],
        env=serve_env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, proc)
        headers = {"X-API-Token": "configured-token"}
        status = httpx.get(f"{url}/instance/status", headers=headers)
        assert status.status_code == 200
        assert status.json()["ok"] is True
        plugins = httpx.get(f"{url}/instance/plugins", headers=headers).json()["plugins"]
        assert {"core", "file", "null", "base64", "auth_token"} <= {p["name"] for p in plugins}
    finally:
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=15)
    assert proc.returncode == 0
    assert "configured-token" not in stdout + stderr


def test_bad_configuration_stops_startup_with_a_clear_message(tmp_path, serve_env):
    serve_env["MAILPROXY_PORT"] = "70000"
    result = subprocess.run(
        [str(BIN), "serve"], env=serve_env, cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert "MAILPROXY_PORT" in result.stderr
    assert "65535" in result.stderr


def test_invalid_encryption_key_stops_startup(tmp_path, serve_env):
    serve_env["MAILPROXY_ENCRYPTION_KEY"] = "not-a-key"
    result = subprocess.run(
        [str(BIN), "serve", "--port", str(free_port())],
        env=serve_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "MAILPROXY_ENCRYPTION_KEY" in result.stderr


def test_worker_runs_until_sigterm(tmp_path, serve_env):
    proc = subprocess.Popen(
        [str(BIN), "worker"],
        env=serve_env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Wait until it says it is running (its signal handlers are installed by then), however long
    # the start takes on a loaded machine.
    assert proc.stderr is not None
    seen = []
    while "worker started" not in "".join(seen[-1:]):
        line = proc.stderr.readline()
        assert line, f"the worker exited before starting: {''.join(seen)}"
        seen.append(line)
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=15)
    assert proc.returncode == 0


SLOW_PLUGIN = '''
import asyncio
from mailproxy_core import Endpoint, EndpointSpec, hookimpl, public


class Slow(Endpoint):
    @public
    async def wait(self, seconds: float) -> dict:
        """Answer after ``seconds``."""
        await asyncio.sleep(seconds)
        return {"waited": seconds}


@hookimpl
def mailproxy_register_endpoints():
    return [EndpointSpec("slow", Slow)]
'''


def start_with_slow_plugin(
    tmp_path: Path, env: dict[str, str]
) -> tuple[str, subprocess.Popen[str]]:
    site = tmp_path / "site"
    info = site / "slow_plugin-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: slow-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[mailproxy]\nslow = slow_plugin\n")
    (site / "slow_plugin.py").write_text(SLOW_PLUGIN)
    env = {
        **env,
        "PYTHONPATH": str(site),
        "MAILPROXY_API_TOKEN": "t",
        "MAILPROXY_DRAIN_TIMEOUT": "3",
    }
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN), "serve", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for_health(url, proc)
    return url, proc


async def test_sigterm_lets_in_flight_requests_finish(tmp_path, serve_env):
    import asyncio

    url, proc = start_with_slow_plugin(tmp_path, serve_env)
    try:
        async with httpx.AsyncClient(timeout=20) as client:
            request = asyncio.create_task(client.get(f"{url}/slow/wait", params={"seconds": 1.0}))
            await asyncio.sleep(0.3)
            proc.send_signal(signal.SIGTERM)
            response = await request
        assert response.status_code == 200
        assert response.json() == {"waited": 1.0}
        proc.communicate(timeout=15)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()


async def test_shutdown_is_bounded_when_a_request_hangs(tmp_path, serve_env):
    import asyncio

    url, proc = start_with_slow_plugin(tmp_path, serve_env)
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            hanging = asyncio.create_task(client.get(f"{url}/slow/wait", params={"seconds": 60}))
            await asyncio.sleep(0.3)
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            await asyncio.to_thread(proc.communicate, timeout=15)
            elapsed = time.monotonic() - started
            hanging.cancel()
        assert proc.returncode == 0
        assert elapsed < 10
    finally:
        if proc.poll() is None:
            proc.kill()


def test_busy_port_is_one_clear_line_and_exit_code_1(tmp_path, serve_env):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = subprocess.run(
            [str(BIN), "serve", "--port", str(port)],
            env=serve_env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: the port is already in use" in result.stderr
    assert "listening on" not in result.stderr
    assert "Traceback" not in result.stderr


def test_listening_is_announced_after_the_bind_and_migrations_are_logged_once(server):
    url, proc = server
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=15)
    assert f"mail-proxy listening on {url}" in stderr
    applied = [line for line in stderr.splitlines() if "applied migration core:1" in line]
    assert len(applied) == 1, applied


def test_an_oversized_body_is_a_413_error_body_and_no_traceback(tmp_path, serve_env):
    serve_env.update(MAILPROXY_MAX_REQUEST_BYTES="65536", MAILPROXY_API_TOKEN="t" * 32)
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN), "serve", "--port", str(port)],
        env=serve_env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, proc)
        big = {"id": "m1", "tenant_id": "acme", "body": "x" * 70_000}
        response = httpx.post(f"{url}/messages/add", json=big, headers={"X-API-Token": "t" * 32})
        assert response.status_code == 413
        body = response.json()
        assert body["code"] == "payload_too_large"
        assert "64 KiB (65536 bytes)" in body["detail"]
        assert "MAILPROXY_MAX_REQUEST_BYTES" in body["detail"]
        logged = httpx.get(f"{url}/command_log/list", headers={"X-API-Token": "t" * 32}).json()
        assert [(e["endpoint"], e["response_status"], e["payload"]) for e in logged] == [
            ("POST /messages/add", 413, None)
        ]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=15)
    assert "Traceback" not in stderr, stderr
