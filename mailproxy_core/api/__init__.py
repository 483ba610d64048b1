"""The generated API layer: endpoint classes → routes, CLI commands and OpenAPI operations.

This package exports only what endpoint authors need (importing it does not import Quart);
the app factory uses :mod:`.generate`, :mod:`.auth` and :mod:`.errors`, the ``mail-proxy`` command
(package ``mailproxy_cli``) caches what :mod:`.cli_gen` describes.
"""

from __future__ import annotations

from .endpoint import (
    POST,
    Endpoint,
    MethodInfo,
    Scope,
    admin_only,
    any_principal,
    collect_methods,
    describe_endpoint,
    method_scope,
    public,
    tenant_scoped,
)
from .signature import ParamInfo

__all__ = [
    "POST",
    "Endpoint",
    "MethodInfo",
    "ParamInfo",
    "Scope",
    "admin_only",
    "any_principal",
    "collect_methods",
    "describe_endpoint",
    "method_scope",
    "public",
    "tenant_scoped",
]
