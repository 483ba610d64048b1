"""``send``, ``run-now``, ``stats``, ``messages add-batch --file`` and ``command-log export`` as
real processes against a named instance delivering to an aiosmtpd sink over loopback."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailproxy_core.testing.live import SmtpSink, smtp_sink
from tests.cli.conftest import run_cli

pytestmark = pytest.mark.requires_plugins("auth_token", "smtp")


@pytest.fixture(scope="module")
def sink() -> Iterator[tuple[SmtpSink, int]]:
    with smtp_sink() as handler:
        yield handler, handler.port


@pytest.fixture(scope="module")
def tenant(home: Path, cli_env: dict[str, str], instance, sink) -> str:
    name, _port = instance
    _handler, smtp_port = sink
    assert run_cli(["use", f"{name}/acme"], cli_env, home).returncode == 0
    for args in (
        ["tenants", "add", "acme", "--name", "Acme"],
        [
            "accounts",
            "add",
            "acme",
            "a1",
            "--host",
            "127.0.0.1",
            "--port",
            str(smtp_port),
            "--no-use-tls",
        ],
    ):
        result = run_cli(args, cli_env, home)
        assert result.returncode == 0, result.stderr
    return "acme"


def _wait_sent(home: Path, env: dict[str, str], message_id: str) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        result = run_cli(["messages", "get", "acme", message_id, "--json"], env, home)
        message = json.loads(result.stdout)
        if message["status"] in ("sent", "error"):
            return message
        time.sleep(0.5)
    raise AssertionError(f"{message_id} was not sent: {message}")


def test_send_an_eml_with_an_attachment(home: Path, cli_env, tenant, sink) -> None:
    handler, _port = sink
    attachment = bytes(range(256)) * 50
    mail = EmailMessage()
    mail["From"] = "Alice <alice@example.com>"
    mail["To"] = "bob@example.com"
    mail["Subject"] = "Quarterly report"
    mail["X-Report-Id"] = "q3-2026"
    mail.set_content("See the attachment.")
    mail.add_attachment(
        attachment, maintype="application", subtype="octet-stream", filename="report.bin"
    )
    (home / "report.eml").write_bytes(bytes(mail))

    sent = run_cli(
        ["send", "report.eml", "--id", "eml-1", "--priority", "high", "--json"], cli_env, home
    )
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout)["id"] == "eml-1"
    assert run_cli(["run-now"], cli_env, home).returncode == 0
    message = _wait_sent(home, cli_env, "eml-1")
    assert message["status"] == "sent", message
    assert message["priority"] == 1

    received = message_from_bytes(handler.messages()[-1].content, policy=policy.default)
    assert received["Subject"] == "Quarterly report"
    assert received["X-Report-Id"] == "q3-2026"
    parts = list(received.iter_attachments())
    assert [part.get_filename() for part in parts] == ["report.bin"]
    assert parts[0].get_payload(decode=True) == attachment  # byte-identical

    listed = run_cli(["messages", "list", "acme"], cli_env, home)
    assert "eml-1" in listed.stdout and "base64" not in listed.stdout  # payload elided
    stats = json.loads(run_cli(["stats", "--json"], cli_env, home).stdout)
    assert stats["per_tenant"][0]["sent"] >= 1


def test_add_batch_file_in_chunks(home: Path, cli_env, tenant) -> None:
    lines = [
        json.dumps(
            {
                "id": f"b{n}",
                "tenant_id": "acme",
                "account_id": "a1",
                "from": "a@example.com",
                "to": "b@example.com",
                "subject": "s",
                "body": "b",
            }
        )
        for n in range(25)
    ]
    lines.insert(10, json.dumps({"id": "bad", "tenant_id": "nope", "account_id": "a1"}))
    (home / "batch.jsonl").write_text("\n".join(lines) + "\n")
    result = run_cli(
        ["messages", "add-batch", "--file", "batch.jsonl", "--chunk-size", "7", "--json"],
        cli_env,
        home,
    )
    assert result.returncode == 1  # one rejected
    summary = json.loads(result.stdout)
    assert summary["queued"] == 25
    assert summary["rejected"] == [{"id": "bad", "reason": "tenant 'nope' not found"}]

    clean = run_cli(
        ["messages", "add-batch", "-", "--json"],
        cli_env,
        home,
        stdin="[" + lines[0].replace('"b0"', '"stdin-1"') + "]",
    )
    assert clean.returncode == 0, clean.stderr


def test_command_log_export_to_a_file(home: Path, cli_env, tenant) -> None:
    result = run_cli(["command-log", "export", "-o", "log.jsonl"], cli_env, home)
    assert result.returncode == 0, result.stderr
    entries = [json.loads(line) for line in (home / "log.jsonl").read_text().splitlines()]
    assert any(entry["endpoint"] == "POST /tenants/add" for entry in entries)
    assert "Wrote" in result.stderr and result.stdout == ""
