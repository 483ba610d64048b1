"""Settings: defaults, TOML file, environment, plugin sections and error messages."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field, SecretStr, ValidationError

from mailproxy_core.errors import ConfigurationError
from mailproxy_core.settings import LOG_LEVELS, Settings, load_settings


class SmtpSettings(BaseModel):
    """A sample plugin settings model."""

    pool_size: int = Field(4, ge=1, le=100)
    timeout: float = 30.0
    verify_tls: bool = True
    relays: list[str] = []
    headers: dict[str, str] = {}
    password: str | None = None


class RequiredSettings(BaseModel):
    """A plugin model with a required field."""

    endpoint: str


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mp.toml"
    path.write_text(text, encoding="utf-8")
    return path


def config_error(**kwargs: Any) -> str:
    with pytest.raises(ConfigurationError) as info:
        load_settings(**kwargs)
    return str(info.value)


# -- defaults and sources -----------------------------------------------------------------


def test_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(environ={})
    assert settings.db == str(tmp_path / "mailproxy.db")
    assert settings.api_token is None
    assert settings.encryption_key is None
    assert settings.encryption_key_file is None
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.send_loop_interval == 0.5
    assert settings.max_retries == 5
    assert settings.retry_delays == (60.0, 300.0, 900.0, 3600.0, 7200.0)
    assert settings.report_interval == 300.0
    assert settings.report_retention_seconds == 604800
    assert settings.attachment_roots == ()
    assert settings.plugins is None
    assert settings.disabled_plugins == ()
    assert settings.required_plugins == ()
    assert settings.test_mode is False
    assert settings.drain_timeout == 5.0
    assert settings.max_batch_messages == 1000
    assert settings.max_concurrency == 10
    assert settings.max_per_account == 3
    assert settings.batch_size == 50
    assert settings.lease_seconds == 60.0
    assert settings.log_level == "INFO"
    assert settings.plugin_sections == {}


def test_environ_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILPROXY_PORT", "8123")
    assert load_settings().port == 8123


def test_settings_are_frozen() -> None:
    settings = Settings.from_values(port=9000)
    with pytest.raises(ValidationError):
        settings.port = 1  # type: ignore[misc]


def test_toml_file(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path,
        """
        db = "postgresql://mp@db.example/mail"
        host = "0.0.0.0"
        port = 9000
        retry_delays = [1, 2.5]
        attachment_roots = ["/srv/a", "/srv/b"]
        plugins = ["smtp", "auth_token"]
        test_mode = true
        log_level = "debug"
        """,
    )
    settings = load_settings(path, environ={})
    assert settings.db == "postgresql://mp@db.example/mail"
    assert (settings.host, settings.port) == ("0.0.0.0", 9000)
    assert settings.retry_delays == (1.0, 2.5)
    assert settings.attachment_roots == (Path("/srv/a").resolve(), Path("/srv/b").resolve())
    assert settings.plugins == ("smtp", "auth_token")
    assert settings.test_mode is True
    assert settings.log_level == "DEBUG"
    assert settings.source_of("port") == f"port in {path}"


def test_config_path_from_mailproxy_config(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "port = 9100\n")
    assert load_settings(environ={"MAILPROXY_CONFIG": str(path)}).port == 9100


def test_environment_overrides_toml(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'port = 9000\nhost = "0.0.0.0"\n')
    settings = load_settings(path, environ={"MAILPROXY_PORT": "9001"})
    assert settings.port == 9001
    assert settings.host == "0.0.0.0"
    assert settings.source_of("port") == "MAILPROXY_PORT"


def test_overrides_win_over_everything_and_none_is_skipped(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "port = 9000\n")
    settings = load_settings(path, environ={"MAILPROXY_PORT": "9001"}, port=9002, host=None)
    assert settings.port == 9002
    assert settings.host == "127.0.0.1"


def test_unknown_override_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match="prot"):
        load_settings(environ={}, prot=1)


def test_gmp_aliases() -> None:
    settings = load_settings(environ={"GMP_DB_PATH": "/var/gmp.db", "GMP_API_TOKEN": "tok"})
    assert settings.db == "/var/gmp.db"
    assert settings.api_token is not None
    assert settings.api_token.get_secret_value() == "tok"


def test_mailproxy_name_wins_over_alias() -> None:
    environ = {"MAILPROXY_DB": "/var/new.db", "GMP_DB_PATH": "/var/old.db"}
    assert load_settings(environ=environ).db == "/var/new.db"


def test_empty_environment_variable_counts_as_unset() -> None:
    settings = load_settings(environ={"MAILPROXY_PORT": "", "MAILPROXY_API_TOKEN": " "})
    assert settings.port == 8000
    assert settings.api_token is None


def test_unknown_mailproxy_variables_are_ignored() -> None:
    environ = {
        "MAILPROXY_TEST_PG_URL": "postgresql://localhost/test",
        "MAILPROXY_URL": "http://127.0.0.1:8000",
        "MAILPROXY_SOMETHING_ELSE": "x",
        "MAILPROXY_PLUGIN_SECTIONS": "{}",
    }
    settings = load_settings(environ=environ)
    assert settings == load_settings(environ={})


def test_from_values() -> None:
    settings = Settings.from_values(port=1234, api_token="secret", test_mode=True)
    assert settings.port == 1234
    assert isinstance(settings.api_token, SecretStr)
    assert settings.test_mode is True


# -- formats --------------------------------------------------------------------------------


def test_retry_delays_comma_separated() -> None:
    settings = load_settings(environ={"MAILPROXY_RETRY_DELAYS": "60, 300,0.5,"})
    assert settings.retry_delays == (60.0, 300.0, 0.5)


def test_plugin_lists_comma_separated() -> None:
    settings = load_settings(
        environ={
            "MAILPROXY_PLUGINS": "smtp,metrics, auth_token",
            "MAILPROXY_DISABLED_PLUGINS": "ee-bounce",
            "MAILPROXY_REQUIRED_PLUGINS": "smtp",
        }
    )
    assert settings.plugins == ("smtp", "metrics", "auth_token")
    assert settings.disabled_plugins == ("ee-bounce",)
    assert settings.required_plugins == ("smtp",)


def test_attachment_roots_separated_by_pathsep(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    single = load_settings(environ={"MAILPROXY_ATTACHMENT_ROOTS": str(first)})
    assert single.attachment_roots == (first.resolve(),)
    both = load_settings(environ={"MAILPROXY_ATTACHMENT_ROOTS": f"{first}{os.pathsep}{second}"})
    assert both.attachment_roots == (first.resolve(), second.resolve())


def test_attachment_roots_are_resolved_through_symlinks(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    settings = load_settings(environ={"MAILPROXY_ATTACHMENT_ROOTS": str(link)})
    assert settings.attachment_roots == (real.resolve(),)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("0", False), ("true", True), ("false", False), ("TRUE", True)],
)
def test_test_mode_booleans(raw: str, expected: bool) -> None:
    assert load_settings(environ={"MAILPROXY_TEST_MODE": raw}).test_mode is expected


def test_toml_strings_in_environment_format(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'retry_delays = "5,10"\nplugins = "smtp"\n')
    settings = load_settings(path, environ={})
    assert settings.retry_delays == (5.0, 10.0)
    assert settings.plugins == ("smtp",)


def test_toml_allow_list_beside_plugin_tables(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path,
        """
        [plugins]
        enabled = ["smtp"]

        [plugins.smtp]
        pool_size = 8
        """,
    )
    settings = load_settings(path, environ={})
    assert settings.plugins == ("smtp",)
    assert settings.plugin_sections == {"smtp": {"pool_size": 8}}


def test_log_level_is_case_insensitive() -> None:
    assert load_settings(environ={"MAILPROXY_LOG_LEVEL": "warning"}).log_level == "WARNING"
    assert set(LOG_LEVELS) == {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}


# -- database location --------------------------------------------------------------------


def test_relative_db_path_is_made_absolute_at_load_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(environ={"MAILPROXY_DB": "data/mp.db"})
    monkeypatch.chdir("/")
    assert settings.db == str(tmp_path / "data" / "mp.db")


def test_relative_sqlite_url_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(environ={"MAILPROXY_DB": "sqlite:///mp.db?timeout=5"})
    assert settings.db == f"sqlite:///{tmp_path / 'mp.db'}?timeout=5"


@pytest.mark.parametrize(
    "value",
    [
        "sqlite:////var/lib/mp.db",
        "sqlite:///:memory:",
        ":memory:",
        "postgresql://user:pw@localhost:5432/mail",
        "postgresql+asyncpg://localhost/mail",
    ],
)
def test_db_values_kept_as_written(value: str) -> None:
    assert load_settings(environ={"MAILPROXY_DB": value}).db == value


def test_db_url_with_unknown_scheme() -> None:
    message = config_error(environ={"MAILPROXY_DB": "mysql://localhost/mail"})
    assert "MAILPROXY_DB" in message
    assert "mysql" in message
    assert "postgresql://" in message


# -- plugin sections ------------------------------------------------------------------------


def test_plugin_sections_from_toml_and_environment(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path,
        """
        [plugins.smtp]
        pool_size = 8
        timeout = 12.5
        relays = ["a.example"]

        [plugins.smtp.headers]
        X-From = "toml"
        """,
    )
    environ = {
        "MAILPROXY_SMTP__POOL_SIZE": "16",
        "MAILPROXY_SMTP__VERIFY_TLS": "false",
        "MAILPROXY_SMTP__RELAYS": "b.example, c.example",
        "MAILPROXY_SMTP__HEADERS__X-ENV": "env",
    }
    settings = load_settings(path, environ=environ)
    smtp = settings.plugin_settings("smtp", SmtpSettings)
    assert isinstance(smtp, SmtpSettings)
    assert smtp.pool_size == 16
    assert smtp.timeout == 12.5
    assert smtp.verify_tls is False
    assert smtp.relays == ["b.example", "c.example"]
    assert smtp.headers == {"X-From": "toml", "x-env": "env"}


def test_plugin_env_json_values() -> None:
    environ = {
        "MAILPROXY_SMTP__RELAYS": '["a,b", "c"]',
        "MAILPROXY_SMTP__HEADERS": '{"X-A": "1"}',
    }
    smtp = load_settings(environ=environ).plugin_settings("smtp", SmtpSettings)
    assert isinstance(smtp, SmtpSettings)
    assert smtp.relays == ["a,b", "c"]
    assert smtp.headers == {"X-A": "1"}


def test_plugin_section_name_is_lowercased_and_may_contain_underscores() -> None:
    settings = load_settings(environ={"MAILPROXY_STORAGE_LOCAL__ROOT": "/srv"})
    assert settings.plugin_sections == {"storage_local": {"root": "/srv"}}


def test_plugin_without_section_gets_model_defaults() -> None:
    smtp = load_settings(environ={}).plugin_settings("smtp", SmtpSettings)
    assert smtp == SmtpSettings()


def test_plugin_sections_from_values() -> None:
    settings = Settings.from_values(plugin_sections={"smtp": {"pool_size": 2}})
    smtp = settings.plugin_settings("smtp", SmtpSettings)
    assert isinstance(smtp, SmtpSettings)
    assert smtp.pool_size == 2


def test_plugin_settings_does_not_mutate_sections() -> None:
    settings = load_settings(environ={"MAILPROXY_SMTP__RELAYS": "a,b"})
    settings.plugin_settings("smtp", SmtpSettings)
    assert settings.plugin_sections == {"smtp": {"relays": "a,b"}}


def test_bad_plugin_value_from_environment() -> None:
    settings = load_settings(environ={"MAILPROXY_SMTP__POOL_SIZE": "lots"})
    with pytest.raises(ConfigurationError) as info:
        settings.plugin_settings("smtp", SmtpSettings)
    message = str(info.value)
    assert "MAILPROXY_SMTP__POOL_SIZE" in message
    assert "'lots'" in message
    assert "an integer between 1 and 100" in message


def test_bad_plugin_value_from_toml(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[plugins.smtp]\npool_size = 0\n")
    settings = load_settings(path, environ={})
    with pytest.raises(ConfigurationError) as info:
        settings.plugin_settings("smtp", SmtpSettings)
    message = str(info.value)
    assert f"plugins.smtp.pool_size in {path}" in message
    assert "between 1 and 100" in message


def test_unknown_plugin_key_is_reported() -> None:
    settings = load_settings(environ={"MAILPROXY_SMTP__POOL_SZE": "3"})
    with pytest.raises(ConfigurationError) as info:
        settings.plugin_settings("smtp", SmtpSettings)
    message = str(info.value)
    assert "MAILPROXY_SMTP__POOL_SZE" in message
    assert "pool_size" in message


def test_missing_required_plugin_value() -> None:
    with pytest.raises(ConfigurationError) as info:
        load_settings(environ={}).plugin_settings("relay", RequiredSettings)
    message = str(info.value)
    assert "MAILPROXY_RELAY__ENDPOINT" in message
    assert "[plugins.relay]" in message
    assert "required" in message


def test_plugin_secret_value_is_not_echoed() -> None:
    class Strict(BaseModel):
        password: int

    settings = load_settings(environ={"MAILPROXY_SMTP__PASSWORD": "hunter2"})
    with pytest.raises(ConfigurationError) as info:
        settings.plugin_settings("smtp", Strict)
    assert "MAILPROXY_SMTP__PASSWORD" in str(info.value)
    assert "hunter2" not in str(info.value)


# -- bad configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("var", "value", "expected"),
    [
        ("MAILPROXY_PORT", "70000", "an integer between 1 and 65535"),
        ("MAILPROXY_PORT", "http", "an integer between 1 and 65535"),
        ("MAILPROXY_SEND_LOOP_INTERVAL", "0", "a number greater than 0"),
        ("MAILPROXY_MAX_RETRIES", "-1", "an integer of at least 0"),
        ("MAILPROXY_RETRY_DELAYS", "60,soon", "positive numbers of seconds"),
        ("MAILPROXY_RETRY_DELAYS", "60,-5", "positive numbers of seconds"),
        ("MAILPROXY_REPORT_INTERVAL", "never", "a number greater than 0"),
        ("MAILPROXY_REPORT_RETENTION_SECONDS", "-3", "an integer of at least 0"),
        ("MAILPROXY_TEST_MODE", "maybe", "1/0 or true/false"),
        ("MAILPROXY_LOG_LEVEL", "LOUD", "one of DEBUG, INFO, WARNING, ERROR"),
        ("MAILPROXY_PLUGINS", "smtp,bad name", "plugin names"),
        ("MAILPROXY_DRAIN_TIMEOUT", "-1", "a number of at least 0"),
        ("MAILPROXY_MAX_CONCURRENCY", "0", "an integer of at least 1"),
        ("MAILPROXY_MAX_PER_ACCOUNT", "x", "an integer of at least 1"),
        ("MAILPROXY_BATCH_SIZE", "1.5", "an integer of at least 1"),
        ("MAILPROXY_MAX_BATCH_MESSAGES", "0", "an integer of at least 1"),
        ("MAILPROXY_LEASE_SECONDS", "0", "a number greater than 0"),
    ],
)
def test_bad_environment_value(var: str, value: str, expected: str) -> None:
    message = config_error(environ={var: value})
    assert var in message
    assert expected in message


def test_bad_toml_value_names_key_and_file(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "port = 0\n")
    message = config_error(config_path=path, environ={})
    assert f"port in {path}" in message
    assert "an integer between 1 and 65535" in message


def test_bad_override_names_the_setting() -> None:
    message = config_error(environ={}, port=-1)
    assert "port" in message
    assert "between 1 and 65535" in message


def test_bad_from_values_raises_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="port"):
        Settings.from_values(port="x")


def test_several_problems_are_reported_together() -> None:
    message = config_error(environ={"MAILPROXY_PORT": "0", "MAILPROXY_BATCH_SIZE": "0"})
    assert "MAILPROXY_PORT" in message
    assert "MAILPROXY_BATCH_SIZE" in message


def test_missing_config_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    message = config_error(config_path=missing, environ={})
    assert str(missing) in message
    assert "not found" in message


def test_config_path_is_a_directory(tmp_path: Path) -> None:
    message = config_error(config_path=tmp_path, environ={})
    assert str(tmp_path) in message


def test_unparseable_toml(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "port = = 1\n")
    message = config_error(config_path=path, environ={})
    assert str(path) in message
    assert "not valid TOML" in message
    assert "line 1" in message


def test_unknown_toml_key(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "prot = 9000\n")
    message = config_error(config_path=path, environ={})
    assert f"prot in {path}" in message
    assert "did you mean port?" in message


def test_unknown_non_table_key_under_plugins(tmp_path: Path) -> None:
    path = write_toml(tmp_path, '[plugins]\nsmtp = "on"\n')
    message = config_error(config_path=path, environ={})
    assert "plugins.smtp" in message
    assert "[plugins.smtp] table" in message


def test_plugin_sections_is_not_a_toml_key(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[plugin_sections.smtp]\npool_size = 1\n")
    message = config_error(config_path=path, environ={})
    assert f"plugin_sections in {path}" in message


def test_empty_api_token_in_toml(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'api_token = ""\n')
    message = config_error(config_path=path, environ={})
    assert f"api_token in {path}" in message
    assert "non-empty token" in message


def test_secret_values_are_not_echoed_in_errors(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "encryption_key = 12345\n")
    message = config_error(config_path=path, environ={})
    assert "encryption_key in" in message
    assert "12345" not in message


def test_both_key_and_key_file() -> None:
    environ = {"MAILPROXY_ENCRYPTION_KEY": "k", "MAILPROXY_ENCRYPTION_KEY_FILE": "/run/key"}
    message = config_error(environ=environ)
    assert "MAILPROXY_ENCRYPTION_KEY and MAILPROXY_ENCRYPTION_KEY_FILE" in message


def test_required_plugin_cannot_be_disabled() -> None:
    environ = {"MAILPROXY_REQUIRED_PLUGINS": "smtp", "MAILPROXY_DISABLED_PLUGINS": "smtp"}
    message = config_error(environ=environ)
    assert "MAILPROXY_REQUIRED_PLUGINS" in message
    assert "smtp" in message


def test_required_plugin_must_be_allowed() -> None:
    environ = {"MAILPROXY_REQUIRED_PLUGINS": "smtp", "MAILPROXY_PLUGINS": "metrics"}
    message = config_error(environ=environ)
    assert "MAILPROXY_PLUGINS" in message
    assert "smtp" in message


# -- display ----------------------------------------------------------------------------------


def test_redacted_never_contains_secrets() -> None:
    settings = load_settings(
        environ={
            "MAILPROXY_API_TOKEN": "admin-token-value",
            "MAILPROXY_ENCRYPTION_KEY": "key-value",
            "MAILPROXY_DB": "postgresql://mp:db-password@db.example:5432/mail",
            "MAILPROXY_SMTP__PASSWORD": "smtp-password",
            "MAILPROXY_SMTP__POOL_SIZE": "4",
            "MAILPROXY_ATTACHMENT_ROOTS": "/srv/files",
        }
    )
    shown = settings.redacted()
    text = repr(shown) + repr(settings) + str(settings)
    for secret in ("admin-token-value", "key-value", "db-password", "smtp-password"):
        assert secret not in text
    assert shown["api_token"] == "***"
    assert shown["encryption_key"] == "***"
    assert shown["db"] == "postgresql://mp:***@db.example:5432/mail"
    assert shown["plugin_sections"] == {"smtp": {"password": "***", "pool_size": "4"}}
    assert shown["attachment_roots"] == [str(Path("/srv/files").resolve())]
    assert shown["port"] == 8000


def test_redacted_shows_unset_secrets_as_none() -> None:
    shown = Settings.from_values().redacted()
    assert shown["api_token"] is None
    assert shown["encryption_key"] is None


def test_redacted_masks_password_of_ipv6_database_url() -> None:
    settings = load_settings(environ={"MAILPROXY_DB": "postgresql://mp:pw@[::1]:5432/mail"})
    assert settings.redacted()["db"] == "postgresql://mp:***@[::1]:5432/mail"


def test_plugin_env_values_for_abstract_sequences_and_nested_models() -> None:
    from collections.abc import Sequence

    class Tls(BaseModel):
        verify: bool = True

    class Relay(BaseModel):
        hosts: Sequence[str] = ()
        tls: Tls = Tls()

    environ = {"MAILPROXY_RELAY__HOSTS": "a, b", "MAILPROXY_RELAY__TLS": '{"verify": false}'}
    relay = load_settings(environ=environ).plugin_settings("relay", Relay)
    assert isinstance(relay, Relay)
    assert list(relay.hosts) == ["a", "b"]
    assert relay.tls.verify is False
    nested = load_settings(environ={"MAILPROXY_RELAY__TLS__VERIFY": "0"})
    relay = nested.plugin_settings("relay", Relay)
    assert isinstance(relay, Relay)
    assert relay.tls.verify is False
    bad = load_settings(environ={"MAILPROXY_RELAY__TLS__VERIFY": "perhaps"})
    with pytest.raises(ConfigurationError, match="MAILPROXY_RELAY__TLS__VERIFY"):
        bad.plugin_settings("relay", Relay)
