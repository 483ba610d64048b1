"""Makes the example plugin importable where it is not installed (all but tox env example).

The package is loaded from its file rather than by putting ``src`` on ``sys.path``: once tox's
``example`` env has installed it in editable mode, ``src`` also holds its ``.egg-info``, and on
``sys.path`` that metadata would make every later test in the session discover the plugin's
entry point as if it were installed.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

if importlib.util.find_spec("mailproxy_example_relay") is None:
    package = Path(__file__).resolve().parent.parent / "src" / "mailproxy_example_relay"
    spec = importlib.util.spec_from_file_location(
        "mailproxy_example_relay", package / "__init__.py", submodule_search_locations=[]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
