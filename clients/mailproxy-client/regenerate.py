"""Regenerate ``src/mailproxy_client/_api.py`` from the OpenAPI document of this checkout.

Builds the service in-process with every installed plugin (so install the EE plugins first to
cover their routes), renders the route methods and formats them with ruff. ``make client`` runs it.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
TARGET = HERE / "src" / "mailproxy_client" / "_api.py"


async def _openapi() -> Any:
    from mailproxy_core.app import create_app
    from mailproxy_core.settings import load_settings

    with tempfile.TemporaryDirectory() as workdir:
        app = create_app(load_settings(db=str(Path(workdir) / "openapi.db")))
        response = await app.test_client().get("/openapi.json")
        return await response.get_json()


def main() -> None:
    """Write ``_api.py`` and format it."""
    sys.path.insert(0, str(HERE / "src" / "mailproxy_client"))
    from _generate import render  # the generator alone: the package may not import yet

    TARGET.write_text(render(asyncio.run(_openapi())), encoding="utf-8")
    ruff = Path(sys.executable).parent / "ruff"
    subprocess.run([str(ruff), "format", "-q", str(TARGET)], check=True)
    print(f"wrote {TARGET}")


if __name__ == "__main__":
    main()
