"""Remote CLI commands built from the endpoint descriptions, run against the sample API served by
hypercorn over loopback."""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping, Sequence

import click
import pytest
from click.testing import CliRunner, Result

from mailproxy_cli.remote import build_groups
from mailproxy_core.api import Endpoint, admin_only
from mailproxy_core.api.cli_gen import describe_commands
from mailproxy_core.errors import PluginError
from mailproxy_core.specs import EndpointSpec

# Unset so that the developer's own environment cannot leak into the tests.
CLEAN_ENV: dict[str, str | None] = {
    "MAILPROXY_URL": None,
    "MAILPROXY_API_TOKEN": None,
    "GMP_INSTANCE": None,
    "MAILPROXY_HOME": "/nonexistent/mail-proxy-home",
}


@pytest.fixture(scope="module")
def cli(api_specs: Sequence[EndpointSpec]) -> click.Group:
    """``mail-proxy`` holding only the generated remote groups."""
    root = click.Group("mail-proxy")
    for group in build_groups(describe_commands(api_specs)):
        root.add_command(group)
    return root


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]  # click < 8.2
    except TypeError:
        return CliRunner()


def run(
    cli: click.Group,
    url: str,
    *args: str,
    token: str | None = "admin-token",
    env: Mapping[str, str | None] | None = None,
) -> Result:
    options = ["--url", url] if url else []
    options += ["--token", token] if token else []
    return _runner().invoke(
        cli, [*args, *options], env={**CLEAN_ENV, **(env or {})}, catch_exceptions=False
    )


def test_groups_and_commands_follow_the_endpoints(cli: click.Group) -> None:
    assert sorted(cli.commands) == ["instance", "messages", "tenants"]
    tenants = cli.commands["tenants"]
    assert isinstance(tenants, click.Group)
    assert tenants.list_commands(click.Context(tenants)) == [
        "add",
        "list",
        "get",
        "suspend-batch",
        "create-api-key",
    ]


def test_post_command_maps_arguments_and_options(cli: click.Group, live_api_url: str) -> None:
    result = run(
        cli,
        live_api_url,
        "tenants",
        "add",
        "acme",
        "--name",
        "Acme Corp",
        "--no-active",
        "--rate-limits",
        '{"per_minute": 5}',
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("\n") == 1  # exactly one (compact) JSON document
    assert json.loads(result.stdout) == {
        "id": "acme",
        "name": "Acme Corp",
        "active": False,
        "rate_limits": {"per_minute": 5},
    }


def test_get_command_sends_a_query_string(cli: click.Group, live_api_url: str) -> None:
    result = run(
        cli,
        live_api_url,
        "messages",
        "list",
        "acme",
        "--limit",
        "5",
        "--status",
        "sent",
        "--ids",
        '["a", "b"]',
        "--filters",
        '{"x": 1}',
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {
        "tenant_id": "acme",
        "limit": 5,
        "status": "sent",
        "ids": ["a", "b"],
        "filters": {"x": 1},
    }


def test_required_parameters_are_positional_in_signature_order(
    cli: click.Group, live_api_url: str
) -> None:
    result = run(cli, live_api_url, "messages", "get", "acme", "m1", "--json")
    assert json.loads(result.stdout) == {"tenant_id": "acme", "id": "m1"}
    result = run(
        cli, live_api_url, "messages", "add", "acme", "m2", "25", "--priority", "1", "--json"
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"tenant_id": "acme", "id": "m2", "port": 25, "priority": 1}


def test_dashed_names_with_underscore_aliases(cli: click.Group, live_api_url: str) -> None:
    for name in ("suspend-batch", "suspend_batch"):
        result = run(cli, live_api_url, "tenants", name, "acme", "--batch-code", "b1", "--json")
        assert result.exit_code == 0, result.stderr
        answer = json.loads(result.stdout)
        assert answer["ok"] is True and answer["suspended_batches"][-1] == "b1"


def test_without_json_the_result_is_a_table(cli: click.Group, live_api_url: str) -> None:
    result = run(cli, live_api_url, "messages", "get", "acme", "m1")
    assert result.exit_code == 0
    assert [line.split() for line in result.stdout.splitlines()] == [
        ["tenant_id", "acme"],
        ["id", "m1"],
    ]


def test_extra_fields_for_kwargs_methods(cli: click.Group, live_api_url: str, tmp_path) -> None:
    result = run(
        cli, live_api_url, "messages", "annotate", "hi", '{"from": "a@example.com"}', "--json"
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"note": "hi", "fields": {"from": "a@example.com"}}
    data = tmp_path / "fields.json"
    data.write_text('{"from": "b@example.com"}')
    result = run(cli, live_api_url, "messages", "annotate", "hi", f"@{data}", "--json")
    assert json.loads(result.stdout) == {"note": "hi", "fields": {"from": "b@example.com"}}


def test_json_options_from_stdin(cli: click.Group, live_api_url: str) -> None:
    result = _runner().invoke(
        cli,
        [
            "tenants",
            "add",
            "acme",
            "--rate-limits",
            "-",
            "--json",
            "--url",
            live_api_url,
            "--token",
            "admin-token",
        ],
        input='{"per_minute": 7}',
        env=CLEAN_ENV,
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["rate_limits"] == {"per_minute": 7}


def test_public_command_needs_no_token(cli: click.Group, live_api_url: str) -> None:
    result = run(cli, live_api_url, "instance", "health", "--json", token=None)
    assert (result.exit_code, json.loads(result.stdout)) == (0, {"status": "ok"})


def test_url_and_token_from_the_environment(cli: click.Group, live_api_url: str) -> None:
    env = {"MAILPROXY_URL": live_api_url, "MAILPROXY_API_TOKEN": "key-acme"}
    result = run(cli, "", "messages", "count_active", "--json", token=None, env=env)
    assert (result.exit_code, result.stdout) == (0, "3\n")


def test_http_error_exits_1_with_the_detail(cli: click.Group, live_api_url: str) -> None:
    result = run(cli, live_api_url, "tenants", "add", "x", token="key-acme")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "HTTP 403 forbidden: /tenants/add is reserved to the instance admin" in result.stderr
    result = run(cli, live_api_url, "tenants", "add", "x", "--json", token="key-acme")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["code"] == "forbidden"


def test_missing_token_hint(cli: click.Group, live_api_url: str) -> None:
    result = run(cli, live_api_url, "tenants", "list", token=None)
    assert result.exit_code == 1
    assert "HTTP 401 unauthorized" in result.stderr
    assert "Hint: pass --token, set MAILPROXY_API_TOKEN" in result.stderr


def test_unreachable_instance_exits_2(cli: click.Group) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_url = f"http://127.0.0.1:{sock.getsockname()[1]}"  # bound, never listening
        result = run(cli, closed_url, "tenants", "list", "--json")
    assert result.exit_code == 2
    assert "cannot reach mail-proxy at" in result.stderr
    assert "mail-proxy serve" in result.stderr and "--url" in result.stderr
    assert json.loads(result.stdout)["code"] == "connection_error"


def test_bad_json_option_is_a_usage_error(cli: click.Group, live_api_url: str) -> None:
    result = run(cli, live_api_url, "tenants", "add", "acme", "--rate-limits", "{oops")
    assert result.exit_code == 2
    assert "is not valid JSON" in result.stderr
    result = run(cli, live_api_url, "messages", "list", "acme", "--status", "lost")
    assert result.exit_code == 2
    assert "lost" in result.stderr


def test_help_shows_arguments_options_and_docs(cli: click.Group) -> None:
    result = _runner().invoke(cli, ["tenants", "add", "--help"], env=CLEAN_ENV)
    assert result.exit_code == 0
    for text in (
        "Usage: mail-proxy tenants add [OPTIONS] ID",
        "Create a tenant.",
        "ID  the tenant id chosen by the client.",
        "--name TEXT",
        "--active / --no-active",
        "--rate-limits JSON",
        "[server default: true]",
        "MAILPROXY_URL",
        "Calls POST /tenants/add on the instance.",
    ):
        assert text in result.stdout, text


def test_parameter_clashing_with_a_common_option_is_rejected() -> None:
    class Webhooks(Endpoint):
        @admin_only
        async def set(self, url: str | None = None) -> None:
            """Set the webhook URL."""

    with pytest.raises(
        PluginError, match=r"webhooks\.set .*'url' clashes with the CLI's own --url"
    ):
        describe_commands([EndpointSpec("webhooks", Webhooks)])
