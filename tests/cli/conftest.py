"""A named instance started with ``mail-proxy serve NAME`` in a private MAILPROXY_HOME."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_server import free_port

BIN = Path(sys.executable).parent / "mail-proxy"


def run_cli(
    args: list[str], env: dict[str, str], cwd: Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``mail-proxy ARGS`` as a real process."""
    return subprocess.run(
        [str(BIN), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        input=stdin,
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mphome")


@pytest.fixture(scope="module")
def cli_env(home: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MAILPROXY_", "GMP_"))}
    clean["MAILPROXY_HOME"] = str(home)
    return clean


@pytest.fixture(scope="module")
def instance(home: Path, cli_env: dict[str, str]) -> Iterator[tuple[str, int]]:
    """The instance ``demo``, running; stopped (forcibly if need be) at the end."""
    port = free_port()
    started = run_cli(["serve", "demo", "-p", str(port)], cli_env, home)
    assert started.returncode == 0, started.stderr + started.stdout
    try:
        yield "demo", port
    finally:
        run_cli(["stop", "demo", "-f"], cli_env, home)
