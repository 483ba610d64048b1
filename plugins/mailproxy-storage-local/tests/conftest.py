"""An instance with the ``storage_local`` plugin and an encryption key (links hide paths)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from mailproxy_core import Settings
from mailproxy_core.testing.plugin import ADMIN_TOKEN


@pytest.fixture
def storage_local_settings(tmp_path: Path) -> dict[str, Any]:
    """``[plugins.storage_local]`` of the test instance (override to change)."""
    return {"allowed_roots": [str(tmp_path)]}


@pytest.fixture
def mp_settings(tmp_path: Path, db_url: str, storage_local_settings: dict[str, Any]) -> Settings:
    return Settings.from_values(
        db=db_url,
        api_token=ADMIN_TOKEN,
        test_mode=True,
        encryption_key=base64.b64encode(b"k" * 32).decode(),
        plugin_sections={"storage_local": storage_local_settings},
    )
