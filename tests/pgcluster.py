"""A throw-away PostgreSQL cluster for outage tests: ``initdb``/``pg_ctl`` on a free loopback port.

Never the machine's own server: the cluster lives in a temporary directory, listens on
127.0.0.1 only, and is deleted afterwards. PostgreSQL refuses to run as root, so as root the
cluster is made and run as the ``postgres`` OS user (``runuser``). ``throwaway_cluster()`` skips
the test, saying why, where the server binaries or that user are missing.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailproxy_core.testing.live import free_port


def _tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    return None


@dataclass
class Cluster:
    """A throw-away PostgreSQL cluster on 127.0.0.1:``port``."""

    data: Path
    port: int
    pg_ctl: str
    as_user: list[str]

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        command = [*self.as_user, self.pg_ctl, "-D", str(self.data), "-w", *args]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data}"
        self._ctl("-o", options, "-l", str(self.data / "server.log"), "start")

    def stop(self) -> None:
        self._ctl("-m", "fast", "stop")


@contextmanager
def throwaway_cluster() -> Iterator[Cluster]:
    """A running throw-away cluster, stopped and deleted afterwards (skips when impossible)."""
    initdb, pg_ctl = _tool("initdb"), _tool("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("initdb/pg_ctl not installed (PostgreSQL server binaries)")
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres OS user to run PostgreSQL as")
        if shutil.which("runuser") is None:
            pytest.skip("running as root and runuser is missing (PostgreSQL refuses root)")
        as_user = ["runuser", "-u", "postgres", "--"]
    # not under pytest's tmp_path: as root that is private to root, and PostgreSQL must run as
    # another user
    home = Path(tempfile.mkdtemp(prefix="mailproxy-pg-"))
    data = home / "pgdata"
    data.mkdir()
    if as_user:
        shutil.chown(home, "postgres")
        shutil.chown(data, "postgres")
    try:
        subprocess.run(
            [*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
            check=True,
            capture_output=True,
            timeout=300,
        )
        made = Cluster(data, free_port(), pg_ctl, as_user)
        made.start()
        try:
            yield made
        finally:
            try:
                made.stop()
            except subprocess.CalledProcessError:
                pass  # already stopped
    finally:
        shutil.rmtree(home, ignore_errors=True)
