"""Context commands through click's runner (no instance running), and ``.eml`` parsing."""

from __future__ import annotations

import base64
import json
from email.message import EmailMessage
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailproxy_cli import instances, main
from mailproxy_cli.mail_file import message_from_eml


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str | None]:
    values: dict[str, str | None] = {
        "MAILPROXY_HOME": str(tmp_path),
        "GMP_INSTANCE": None,
        "GMP_TENANT": None,
        "MAILPROXY_URL": None,
        "MAILPROXY_API_TOKEN": None,
    }
    for key, value in values.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    for name, port in (("alpha", 18001), ("beta", 18002)):
        instances.create(instances.instance(name), port)
    return values


def invoke(args: list[str], env: dict[str, str | None]) -> tuple[int, str]:
    result = CliRunner().invoke(main, args, env=env)
    return result.exit_code, result.output


def test_use_and_current(env) -> None:
    assert invoke(["current", "--json"], env)[1].strip() == json.dumps(
        {"instance": None, "tenant": None, "url": None}
    )  # two instances, none selected
    assert invoke(["use", "alpha/acme"], env) == (0, "Now using alpha, tenant acme.\n")
    assert json.loads(invoke(["current", "--json"], env)[1]) == {
        "instance": "alpha",
        "tenant": "acme",
        "url": "http://127.0.0.1:18001",
    }
    assert invoke(["use", "/globex"], env)[0] == 0
    assert invoke(["current", "--export"], env)[1] == (
        "export GMP_INSTANCE=alpha\nexport GMP_TENANT=globex\n"
    )
    code, output = invoke(["use", "nope"], env)
    assert code == 2 and "no instance named 'nope'" in output


def test_resolution_order(env) -> None:
    invoke(["use", "alpha"], env)
    # GMP_INSTANCE beats the current file; a name on the command line beats both.
    with_env = {**env, "GMP_INSTANCE": "beta"}
    assert json.loads(invoke(["current", "--json"], with_env)[1])["instance"] == "beta"
    scoped = json.loads(invoke(["alpha", "initech", "current", "--json"], with_env)[1])
    assert scoped == {"instance": "alpha", "tenant": "initech", "url": "http://127.0.0.1:18001"}


def test_the_only_instance_is_selected(tmp_path: Path, env) -> None:
    solo_home = tmp_path / "solo-home"
    solo_env = {**env, "MAILPROXY_HOME": str(solo_home)}
    solo_home.mkdir()
    Path(solo_home, ".keep").touch()
    code, output = invoke(["list", "--json"], solo_env)
    assert (code, json.loads(output)) == (0, [])
    instance = instances.Instance("only", solo_home / "only")
    instance.path.mkdir()
    instance.config_path.write_text('host = "127.0.0.1"\nport = 18009\n')
    assert json.loads(invoke(["current", "--json"], solo_env)[1])["instance"] == "only"


def test_eml_becomes_a_message() -> None:
    mail = EmailMessage()
    mail["From"] = "Alice <alice@example.com>"
    mail["To"] = "bob@example.com, Carol <carol@example.com>"
    mail["Cc"] = "dan@example.com"
    mail["Subject"] = "Hello"
    mail["Message-ID"] = "<m1@example.com>"
    mail["X-Campaign"] = "spring"
    mail.set_content("plain text")
    mail.add_alternative("<p>html</p>", subtype="html")
    mail.add_attachment(b"\x00\x01binary", maintype="application", subtype="pdf", filename="a.pdf")
    message = message_from_eml(bytes(mail))
    assert message["from"] == "Alice <alice@example.com>"
    assert message["to"] == ["bob@example.com", "Carol <carol@example.com>"]
    assert message["cc"] == ["dan@example.com"]
    assert message["message_id"] == "<m1@example.com>"
    assert message["body"].strip() == "plain text"
    assert message["html"].strip() == "<p>html</p>"
    assert message["headers"] == {"X-Campaign": "spring"}
    [attachment] = message["attachments"]
    assert attachment["filename"] == "a.pdf" and attachment["mime_type"] == "application/pdf"
    assert base64.b64decode(attachment["storage_path"].removeprefix("base64:")) == b"\x00\x01binary"


def test_eml_without_a_sender_is_refused() -> None:
    mail = EmailMessage()
    mail["To"] = "bob@example.com"
    mail.set_content("x")
    with pytest.raises(ValueError, match="no From header"):
        message_from_eml(bytes(mail))
