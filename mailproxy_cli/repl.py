"""``mail-proxy connect``: a Python prompt holding ``proxy``, a guarded client.

``proxy`` forwards the client's public API (entities, route methods, ``status()``, ``url``)
and refuses every name starting with ``_``: the HTTP session, its headers (the token) and the
client's internals are not reachable through it. It is a convenience for an operator who already
holds the token, not a sandbox for untrusted code.
"""

from __future__ import annotations

import sys
from typing import Any

_VISIBLE_DUNDERS = frozenset({"__doc__", "__name__"})
_HIDDEN = frozenset({"close", "request"})


def guard(target: Any, label: str) -> Any:
    """A view of ``target`` that exposes only public attributes, each guarded in turn."""

    class Guarded:
        __slots__ = ()

        def __getattribute__(self, name: str) -> Any:
            if (name.startswith("_") and name not in _VISIBLE_DUNDERS) or name in _HIDDEN:
                raise AttributeError(f"{label}.{name} is not reachable from connect")
            value = getattr(target, name)
            if isinstance(value, str | int | float | bool | type(None)):
                return value
            return guard(value, f"{label}.{name}")

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return target(*args, **kwargs)

        def __dir__(self) -> list[str]:
            return [n for n in dir(target) if not n.startswith("_") and n not in _HIDDEN]

        def __repr__(self) -> str:
            return f"<{label}>"

    Guarded.__name__ = label
    return Guarded()


BANNER = (
    "mail-proxy at {url}\n"
    "'proxy' is a ready client: proxy.status(), proxy.tenants.list(),\n"
    'proxy.messages.list(tenant_id="acme"). Errors raise MailProxyError (.status, .code, '
    ".detail).\nExit with Ctrl-D."
)


def run_repl(client: Any) -> None:
    """Run IPython when it is installed and stdin is a terminal, the standard prompt otherwise."""
    from mailproxy_client import MailProxyError

    namespace = {"proxy": guard(client, "proxy"), "MailProxyError": MailProxyError}
    banner = BANNER.format(url=client.url)
    try:
        if sys.stdin.isatty():
            try:
                import IPython
            except ImportError:
                pass
            else:
                print(banner)
                IPython.start_ipython(argv=["--no-banner"], user_ns=namespace)
                return
        import code

        code.interact(banner=banner, local=namespace, exitmsg="")
    finally:
        client.close()
