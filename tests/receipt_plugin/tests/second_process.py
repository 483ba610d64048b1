"""``mail-proxy serve`` with the example receipt handler, as a second process (tests only).

Where the plugin is installed (the tox env ``example_receipts``) this is exactly ``mail-proxy
serve``; elsewhere the package is loaded from its files and registered in-process, so the
process is the same service with the same plugin either way. Settings come from the
environment (``MAILPROXY_*``).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import importlib.util
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "mailproxy_example_receipts"


def main() -> None:
    installed = {ep.name for ep in importlib.metadata.entry_points(group="mailproxy")}
    if "example_receipts" in installed:
        from mailproxy_core.cli import main as cli

        cli(["serve"])
        return
    spec = importlib.util.spec_from_file_location(
        "mailproxy_example_receipts",
        PACKAGE / "__init__.py",
        submodule_search_locations=[str(PACKAGE)],
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)

    from mailproxy_core.app import create_app
    from mailproxy_core.server import serve_app
    from mailproxy_core.settings import load_settings

    settings = load_settings()
    app = create_app(settings, extra_plugins={"example_receipts": module})
    asyncio.run(
        serve_app(app, host=settings.host, port=settings.port, drain_timeout=settings.drain_timeout)
    )


if __name__ == "__main__":
    main()
