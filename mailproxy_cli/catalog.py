"""The remote commands' descriptions, cached so that the CLI starts without the kernel.

Building the descriptions means discovering every plugin and importing the kernel (about a
second). The result is stored as JSON in ``$MAILPROXY_HOME/.cache/commands.json`` together with
what it was built from: the modification times of the import path's directories (they change
when a distribution is installed or removed), the plugin settings of the environment, and the
modification time of every source file that defines an endpoint.
When any of these differ, the cache is rebuilt.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from .home import home_dir

CACHE_VERSION = 3


class CatalogError(Exception):
    """The plugins or settings are broken, so the remote commands cannot be described."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


_ENV_KEYS = ("MAILPROXY_DISABLED_PLUGINS", "MAILPROXY_PLUGINS", "MAILPROXY_CONFIG")


def _installed() -> dict[str, float]:
    # Installing or removing a distribution adds or removes its *.dist-info directory, which
    # changes the modification time of the directory holding it: a few stat calls instead of
    # reading the metadata of every installed distribution.
    found: dict[str, float] = {}
    for entry in sys.path[1:]:  # [0] is the script's directory or the working directory
        try:
            if entry and os.path.isdir(entry):
                found[entry] = os.stat(entry).st_mtime
        except OSError:
            continue
    return found


def _fingerprint() -> dict[str, Any]:
    return {
        "version": CACHE_VERSION,
        "python": sys.version_info[:2],
        "installed": _installed(),
        "env": {key: os.environ.get(key, "") for key in _ENV_KEYS},
    }


def _files_unchanged(files: dict[str, float]) -> bool:
    for path, mtime in files.items():
        try:
            if os.stat(path).st_mtime != mtime:
                return False
        except OSError:
            return False
    return True


def cache_path() -> Path:
    """Where the descriptions are cached."""
    return home_dir() / ".cache" / "commands.json"


def _build() -> tuple[list[dict[str, Any]], dict[str, float]]:
    from mailproxy_core.api.cli_gen import describe_commands
    from mailproxy_core.api.endpoint import collect_methods
    from mailproxy_core.kernel import build_plugins
    from mailproxy_core.settings import load_settings

    _hooks, registry, _discovery = build_plugins(load_settings())
    infos = collect_methods([entry.spec for entry in registry.endpoints])
    files: dict[str, float] = {}
    # The describing code itself counts too: a changed description rule rebuilds the cache.
    modules = ["mailproxy_core.api.cli_gen", "mailproxy_core.api.signature"]
    modules += [info.endpoint.__module__ for info in infos]
    for name in modules:
        module = sys.modules.get(name)
        path = getattr(module, "__file__", None)
        if path:
            files[path] = os.stat(path).st_mtime
    return describe_commands(infos), files


def load_commands() -> list[dict[str, Any]]:
    """The remote commands' descriptions: from the cache when it is current, else rebuilt.

    Raises:
        CatalogError: the plugins or settings are broken (only when rebuilding).
    """
    path = cache_path()
    fingerprint = _fingerprint()
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))
        if cached.get("fingerprint") == json.loads(json.dumps(fingerprint)) and _files_unchanged(
            cached.get("files", {})
        ):
            commands: list[dict[str, Any]] = cached["commands"]
            return commands
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    try:
        commands, files = _build()
    except Exception as err:
        detail = getattr(err, "detail", None)  # the kernel's MailproxyError
        if not isinstance(detail, str):
            raise
        raise CatalogError(detail) from err
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(
            json.dumps({"fingerprint": fingerprint, "files": files, "commands": commands}),
            encoding="utf-8",
        )
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home only costs speed
    return commands
