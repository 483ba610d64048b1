"""The installed ``attachments`` plugin inside the kernel: discovery, settings, fetchers."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailproxy_attachments import (
    AttachmentsSettings,
    EndpointFetcher,
    FilesystemFetcher,
    HttpUrlFetcher,
    StorageFetcher,
    service_for,
)
from mailproxy_core import ConfigurationError, Settings
from mailproxy_core.kernel import build_kernel


def test_attachments_is_installed(tmp_path: Path) -> None:
    mp = build_kernel(Settings.from_values(db=str(tmp_path / "x.db")))
    info = {p.name: p for p in mp.plugins}["attachments"]
    assert info.status == "loaded"
    assert info.distribution == "mailproxy-attachments"
    assert {"http_url", "endpoint", "filesystem", "storage"} <= set(
        mp.registry.attachment_fetchers.names()
    )
    assert isinstance(mp.plugin_settings("attachments"), AttachmentsSettings)


def test_invalid_settings_stop_startup_naming_the_setting(tmp_path: Path) -> None:
    settings = Settings.from_values(
        db=str(tmp_path / "x.db"), plugin_sections={"attachments": {"max_redirects": -1}}
    )
    with pytest.raises(ConfigurationError, match="max_redirects"):
        build_kernel(settings)


@pytest.fixture
def attachments_settings(tmp_path):
    return {
        "max_concurrent_fetches": 3,
        "disk_cache_dir": str(tmp_path / "cache"),
        "allowed_networks": ["127.0.0.1/32"],
    }


@pytest.mark.requires_plugins("attachments", "smtp", "auth_token")
async def test_all_fetchers_share_one_service_built_from_the_settings(mp_kernel) -> None:
    fetchers = mp_kernel.attachment_fetchers
    assert isinstance(fetchers["http_url"], HttpUrlFetcher)
    assert isinstance(fetchers["endpoint"], EndpointFetcher)
    assert isinstance(fetchers["filesystem"], FilesystemFetcher)
    assert isinstance(fetchers["storage"], StorageFetcher)
    service = service_for(mp_kernel)
    assert all(
        fetchers[name].service is service  # type: ignore[attr-defined]
        for name in ("http_url", "endpoint", "filesystem", "storage")
    )
    assert service.settings.max_concurrent_fetches == 3
