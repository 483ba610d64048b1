"""Install every enterprise distribution under ``mailproxy_ee/`` in editable mode, with its
``test`` extra.

Used by the tox env ``all`` (tox has no globs in ``deps``), so a new ``mailproxy_ee/<name>/``
with a ``pyproject.toml`` is picked up without editing ``tox.ini``. ``make install`` does the
same with a wildcard. Run from anywhere: ``python mailproxy_ee/install_all.py``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def distributions() -> list[Path]:
    """The directories under ``mailproxy_ee/`` that hold a distribution, sorted."""
    return sorted(path.parent for path in HERE.glob("*/pyproject.toml"))


def main() -> int:
    found = distributions()
    if not found:
        print("no enterprise distribution under mailproxy_ee/", file=sys.stderr)
        return 0
    # With their test extras (emulator clients, ...), so that their tests run rather than skip.
    editable = [arg for path in found for arg in ("-e", f"{path}[test]")]
    command = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    return subprocess.call([*command, *editable])


if __name__ == "__main__":
    sys.exit(main())
