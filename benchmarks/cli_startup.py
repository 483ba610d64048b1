"""Start-up time of the ``mail-proxy`` command: ``--help`` and a remote ``tenants list``.

Starts a named instance in a temporary ``MAILPROXY_HOME``, warms the command cache once, then
runs each command ``--runs`` times as a real process and prints the median and best wall time
and the median CPU time (user + system) of the command's own process.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent / "mail-proxy"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def measure(args: list[str], env: dict[str, str], runs: int) -> tuple[float, float, float]:
    """(median wall, best wall, median CPU) seconds of ``mail-proxy ARGS``."""
    walls: list[float] = []
    cpus: list[float] = []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run([str(BIN), *args], env=env, capture_output=True, check=True)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), min(walls), statistics.median(cpus)


def main() -> None:
    """Run the measurement and print one line per command."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILPROXY_", "GMP_"))}
        env["MAILPROXY_HOME"] = home
        subprocess.run(
            [str(BIN), "serve", "bench", "-p", str(_free_port())],
            env=env,
            check=True,
            capture_output=True,
        )
        try:
            subprocess.run(
                [str(BIN), "tenants", "add", "acme"], env=env, check=True, capture_output=True
            )
            for args in (["--help"], ["tenants", "list"], ["tenants", "list", "--json"]):
                median, best, cpu = measure(args, env, options.runs)
                print(
                    f"mail-proxy {' '.join(args):<22} median {median:.3f} s  best {best:.3f} s  "
                    f"CPU {cpu:.3f} s"
                )
        finally:
            subprocess.run([str(BIN), "stop", "bench"], env=env, capture_output=True)


if __name__ == "__main__":
    main()
