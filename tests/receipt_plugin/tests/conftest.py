"""Makes the example receipt handler importable where it is not installed (all but the tox env
``example_receipts``), loading the package from its files (see ``tests/example_plugin`` for why
``src`` is not put on ``sys.path``)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "mailproxy_example_receipts"

if importlib.util.find_spec("mailproxy_example_receipts") is None:
    spec = importlib.util.spec_from_file_location(
        "mailproxy_example_receipts",
        PACKAGE / "__init__.py",
        submodule_search_locations=[str(PACKAGE)],
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
