"""Local CLI commands and a generated remote command, run as real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_server import free_port, wait_for_health

pytestmark = pytest.mark.requires_plugins("auth_token")

BIN = Path(sys.executable).parent / "mail-proxy"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MAILPROXY_", "GMP_"))}
    clean.update(MAILPROXY_DB=str(tmp_path / "mp.db"), MAILPROXY_LOG_LEVEL="DEBUG")
    return clean


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_plugins_json_is_one_document_with_versions(tmp_path, env):
    result = run(["plugins", "--json"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)  # stdout holds exactly one JSON document
    plugins = {p["name"]: p for p in document["plugins"]}
    for name in ("core", "defaults", "file", "null", "base64", "auth_token"):
        assert plugins[name]["status"] == "loaded"
        assert plugins[name]["version"]
    assert plugins["auth_token"]["distribution"] == "mailproxy-auth-token"
    assert "mailproxy_register_auth_backends" in plugins["auth_token"]["hooks"]


def test_plugins_shows_disabled_plugins(tmp_path, env):
    env["MAILPROXY_DISABLED_PLUGINS"] = "null,auth_token"
    document = json.loads(run(["plugins", "--json"], env, tmp_path).stdout)
    status = {p["name"]: p["status"] for p in document["plugins"]}
    assert status["null"] == "disabled" and status["auth_token"] == "disabled"
    text = run(["plugins"], env, tmp_path).stdout
    assert "auth_token" in text and "disabled" in text


def test_migrate_applies_once(tmp_path, env):
    first = run(["migrate", "--json"], env, tmp_path)
    assert first.returncode == 0, first.stderr
    applied = json.loads(first.stdout)["applied"]
    assert "core:1" in applied
    second = json.loads(run(["migrate", "--json"], env, tmp_path).stdout)
    assert second == {"ok": True, "applied": []}


def test_token_without_a_token_yet(tmp_path, env):
    result = run(["token"], env, tmp_path)
    assert result.returncode == 0
    assert "No admin token yet" in result.stdout


def test_remote_command_talks_to_a_running_instance(tmp_path, env):
    port = free_port()
    env["MAILPROXY_API_TOKEN"] = "cli-token"
    server = subprocess.Popen(
        [str(BIN), "serve", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, server)
        status = run(["instance", "status", "--url", url, "--json"], env, tmp_path)
        assert status.returncode == 0, status.stderr
        # serve runs the dispatcher
        assert json.loads(status.stdout) == {"ok": True, "active": True}
        renamed = run(
            ["instance", "update", "--name", "relay-1", "--url", url, "--json"], env, tmp_path
        )
        assert json.loads(renamed.stdout)["name"] == "relay-1"
        denied = run(["instance", "get", "--url", url, "--token", "wrong"], env, tmp_path)
        assert denied.returncode == 1
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=15)


def test_remote_command_without_a_server(tmp_path, env):
    result = run(["instance", "status", "--url", f"http://127.0.0.1:{free_port()}"], env, tmp_path)
    assert result.returncode == 2
    assert result.stderr
