"""Named instances, the current context and remote commands, run as real processes."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from tests.cli.conftest import run_cli
from tests.test_server import free_port

pytestmark = pytest.mark.requires_plugins("auth_token")


def test_instance_lifecycle_and_context(home: Path, cli_env: dict[str, str], instance) -> None:
    name, port = instance
    listed = run_cli(["list", "--json"], cli_env, home)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert rows[0]["name"] == name and rows[0]["running"] is True
    assert rows[0]["url"] == f"http://127.0.0.1:{port}"
    pid = rows[0]["pid"]

    again = run_cli(["serve", name], cli_env, home)
    assert again.returncode == 0
    assert f"already running at http://127.0.0.1:{port} (pid {pid})" in again.stdout
    assert json.loads(run_cli(["list", "--json"], cli_env, home).stdout)[0]["pid"] == pid

    assert run_cli(["use", f"{name}/acme"], cli_env, home).returncode == 0
    exported = run_cli(["current", "--export"], cli_env, home).stdout
    assert exported == f"export GMP_INSTANCE={name}\nexport GMP_TENANT=acme\n"

    # The token is found in the instance directory: nothing exported.
    added = run_cli(["tenants", "add", "acme", "--name", "Acme", "--json"], cli_env, home)
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["name"] == "Acme"
    table = run_cli(["tenants", "list"], cli_env, home)
    assert "acme" in table.stdout and "Acme" in table.stdout
    assert not table.stdout.lstrip().startswith("[")  # a table, not JSON

    # The selected tenant fills a left-out TENANT_ID.
    implicit = run_cli(["tenants", "get", "--json"], cli_env, home)
    assert implicit.returncode == 0, implicit.stderr
    assert json.loads(implicit.stdout)["id"] == "acme"

    scoped = run_cli([name, "stats", "--json"], cli_env, home)
    assert scoped.returncode == 0, scoped.stderr
    assert json.loads(scoped.stdout)["tenants"] == 1

    wrong = run_cli(["tenants", "list", "--token", "wrong-token"], cli_env, home)
    assert wrong.returncode == 1
    assert "HTTP 401 unauthorized" in wrong.stderr

    where = run_cli(["token"], cli_env, home)
    assert f"The admin token of {name} is in {home / name / 'token'}" in where.stdout
    assert (home / name / "token").stat().st_mode & 0o077 == 0  # owner-only

    underscore = run_cli(["tenants", "get_suspended_batches", "acme", "--json"], cli_env, home)
    dashed = run_cli(["tenants", "get-suspended-batches", "acme", "--json"], cli_env, home)
    assert underscore.stdout == dashed.stdout and json.loads(dashed.stdout)["ok"] is True


def _alive(pid: int) -> bool:
    """Running (a zombie left for a parent that never reaps it counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_stop_and_stale_pid(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILPROXY_", "GMP_"))}
    env["MAILPROXY_HOME"] = str(tmp_path)
    port = free_port()
    assert run_cli(["serve", "solo", "-p", str(port)], env, tmp_path).returncode == 0
    pid = json.loads(run_cli(["list", "--json"], env, tmp_path).stdout)[0]["pid"]
    stopped = run_cli(["stop"], env, tmp_path)
    assert "Stopped solo." in stopped.stdout
    assert not _alive(pid)
    rows = json.loads(run_cli(["list", "--json"], env, tmp_path).stdout)
    assert rows == [
        {"name": "solo", "url": f"http://127.0.0.1:{port}", "pid": None, "running": False}
    ]

    # A PID file left behind by a crash names a dead process: detected, and start works.
    (tmp_path / "solo" / "server.pid").write_text(f"{pid}\n")
    assert json.loads(run_cli(["list", "--json"], env, tmp_path).stdout)[0]["running"] is False
    down = run_cli(["solo", "stats"], env, tmp_path)
    assert down.returncode == 2
    assert "cannot reach mail-proxy" in down.stderr and "mail-proxy serve" in down.stderr
    restarted = run_cli(["restart", "solo"], env, tmp_path)
    assert restarted.returncode == 0, restarted.stderr
    new_pid = json.loads(run_cli(["list", "--json"], env, tmp_path).stdout)[0]["pid"]
    assert new_pid and new_pid != pid
    os.kill(new_pid, signal.SIGTERM)
    run_cli(["stop", "solo", "-f"], env, tmp_path)


def test_connect_blocks_private_attributes(home: Path, cli_env: dict[str, str], instance) -> None:
    name, _port = instance
    script = "print(proxy.status())\nproxy._http\nproxy.tenants._caller\nprint('done')\n"
    result = run_cli([name, "connect"], cli_env, home, stdin=script)
    assert result.returncode == 0, result.stderr
    assert "{'ok': True, 'active': True}" in result.stdout
    assert "proxy._http is not reachable from connect" in result.stderr
    assert "proxy.tenants._caller is not reachable from connect" in result.stderr
    token = (home / name / "token").read_text().strip()
    assert token not in result.stdout + result.stderr


def test_help_is_written_for_the_terminal(home: Path, cli_env: dict[str, str]) -> None:
    for args in (["--help"], ["messages", "add-batch", "--help"], ["tenants", "add", "--help"]):
        result = run_cli(args, cli_env, home)
        assert result.returncode == 0, result.stderr
        assert "``" not in result.stdout and "API.md" not in result.stdout, args
    get_help = run_cli(["messages", "get", "--help"], cli_env, home).stdout
    assert "Usage: mail-proxy messages get [OPTIONS] TENANT_ID MESSAGE_ID" in get_help


def test_local_commands_are_quiet(tmp_path: Path, cli_env: dict[str, str]) -> None:
    env = {**cli_env, "MAILPROXY_DB": str(tmp_path / "q.db")}
    for args in (["migrate"], ["plugins"], ["token"]):
        result = run_cli(args, env, tmp_path)
        assert result.returncode == 0, result.stderr
        assert result.stderr == "", (args, result.stderr)


def test_a_named_instance_is_called_with_its_own_token(
    home: Path, cli_env: dict[str, str], instance
) -> None:
    # the README's quickstart exports MAILPROXY_API_TOKEN for the service on :8000; its CLI
    # section then starts and uses a named instance in the same shell
    name, _port = instance
    exported = {**cli_env, "MAILPROXY_API_TOKEN": "token-of-another-instance"}
    stats = run_cli([name, "stats", "--json"], exported, home)
    assert stats.returncode == 0, stats.stderr
    assert "tenants" in json.loads(stats.stdout)
    # an explicit --token still wins
    refused = run_cli([name, "stats", "--token", "wrong"], exported, home)
    assert refused.returncode == 1 and "401 unauthorized" in refused.stderr
