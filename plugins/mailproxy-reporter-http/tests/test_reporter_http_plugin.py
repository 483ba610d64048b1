"""The installed ``reporter_http`` plugin: discovery, settings, URL and auth building."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailproxy_core import ConfigurationError, Settings, Tenant
from mailproxy_core.kernel import build_kernel
from mailproxy_core.settings import load_settings
from mailproxy_reporter_http import HttpReporter, ReporterHttpSettings, sync_url
from mailproxy_reporter_http.reporter import auth_headers


def test_reporter_http_is_installed(tmp_path: Path) -> None:
    mp = build_kernel(Settings.from_values(db=str(tmp_path / "x.db")))
    info = {p.name: p for p in mp.plugins}["reporter_http"]
    assert info.status == "loaded"
    assert info.distribution == "mailproxy-reporter-http"
    assert "http" in mp.registry.reporters
    assert "reporter_http" in mp.registry.settings.names()


def test_kernel_builds_the_reporter_from_its_settings(reporter: HttpReporter) -> None:
    assert reporter.max_batch == 250  # the kernel posts at most this many events at once
    assert reporter.settings.timeout == 1.0 and reporter.settings.connect_timeout == 10.0


def test_settings_come_from_the_environment_and_are_checked(tmp_path: Path) -> None:
    env = {"MAILPROXY_DB": str(tmp_path / "x.db"), "MAILPROXY_REPORTER_HTTP__BATCH_SIZE": "500"}
    settings = load_settings(environ=env)
    assert settings.plugin_settings("reporter_http", ReporterHttpSettings).batch_size == 500
    bad = load_settings(environ={**env, "MAILPROXY_REPORTER_HTTP__BATCH_SIZE": "0"})
    with pytest.raises(ConfigurationError, match="MAILPROXY_REPORTER_HTTP__BATCH_SIZE"):
        bad.plugin_settings("reporter_http", ReporterHttpSettings)


def test_sync_url_joins_base_url_and_path() -> None:
    assert sync_url(Tenant(id="t")) is None
    assert sync_url(Tenant(id="t", client_base_url="https://a.example")) == (
        "https://a.example/mail-proxy/sync"
    )
    assert (
        sync_url(
            Tenant(id="t", client_base_url="https://a.example/app/", client_sync_path="hooks/mp")
        )
        == "https://a.example/app/hooks/mp"
    )


def test_auth_headers_per_method() -> None:
    assert auth_headers({"method": "bearer", "token": "abc"}) == {"Authorization": "Bearer abc"}
    assert auth_headers({"method": "basic", "user": "u", "password": "p"}) == {
        "Authorization": "Basic dTpw"
    }
    assert auth_headers({"method": "none"}) == {} == auth_headers(None)
