"""Fixtures for plugin-machinery tests: fake installed distributions on ``sys.path``."""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def install_fake_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Create a distribution with a ``mailproxy`` entry point, visible to importlib.metadata.

    Returns the module name (unique per call, removed from ``sys.modules`` afterwards).
    """
    site = tmp_path / f"site-{uuid.uuid4().hex[:8]}"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))

    def install(entry_name: str, source: str, *, dist: str | None = None) -> str:
        module = f"fake_{entry_name}_{uuid.uuid4().hex[:8]}"
        dist = dist or f"fake-{entry_name}"
        info = site / f"{dist.replace('-', '_')}-0.3.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.3.1\n")
        (info / "entry_points.txt").write_text(f"[mailproxy]\n{entry_name} = {module}\n")
        (site / f"{module}.py").write_text(textwrap.dedent(source))
        monkeypatch.delitem(sys.modules, module, raising=False)
        return module

    return install
