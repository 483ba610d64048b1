"""Run every benchmark with modest sizes (``make bench``): a quick look, not the reference run.

The reference figures in ``docs/performance.md`` come from each script's own defaults; run a
script directly for those (``benchmarks/enqueue.py``, ``benchmarks/throughput.py``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

MODEST: dict[str, list[str]] = {
    "attachments.py": ["--messages", "300"],
    "dashboard_search.py": ["--messages", "20000", "--repeat", "5"],
    "enqueue.py": ["--batches", "5"],
    "enqueue_vs_delivery.py": ["--backlog", "8000", "--seconds", "8"],
    "reports.py": ["--events", "5000"],
    "throughput.py": [
        "--messages", "5000", "--backlog", "3000", "--urgent", "60",
        "--large", "20000", "--small", "1000", "--pg-messages", "4000",
    ],
}  # fmt: skip
"""Smaller sizes for the scripts that take them; any other script runs with its defaults."""


def benchmark_scripts() -> list[Path]:
    """Every benchmark script: ``benchmarks/*.py`` but this runner and helper modules."""
    return [
        path
        for path in sorted(HERE.glob("*.py"))
        if path.name != Path(__file__).name and not path.stem.endswith("_support")
    ]


def main() -> int:
    """Run each benchmark in turn; the exit code is the first failure's, else 0."""
    status = 0
    for script in benchmark_scripts():
        arguments = MODEST.get(script.name, [])
        print(f"== {script.name} {' '.join(arguments)}", flush=True)
        result = subprocess.run([sys.executable, str(script), *arguments], check=False)
        if result.returncode and not status:
            status = result.returncode
    return status


if __name__ == "__main__":
    sys.exit(main())
