"""mail-proxy plugin ``reporter_http``: delivery reports to client applications over HTTP.

Registers the ``http`` reporter, the default of every tenant: the kernel's reporting loop hands it
a tenant's unreported events in order, and it POSTs them to the tenant's client application as
docs/reports.md describes (auth, optional HMAC signature). Settings live in
``[plugins.reporter_http]`` (``ReporterHttpSettings``); the protocol for client authors is in
``docs/reports.md``.
"""

from __future__ import annotations

from mailproxy_core import ReporterSpec, SettingsSpec, hookimpl

from .entries import SIGNATURE_HEADER, report_body, report_entry, signature
from .reporter import HttpReporter, sync_url
from .settings import ReporterHttpSettings

__version__ = "0.1.0"

__all__ = [
    "SIGNATURE_HEADER",
    "HttpReporter",
    "ReporterHttpSettings",
    "report_body",
    "report_entry",
    "signature",
    "sync_url",
]


@hookimpl
def mailproxy_register_settings() -> list[SettingsSpec]:
    """The ``[plugins.reporter_http]`` section."""
    return [SettingsSpec("reporter_http", ReporterHttpSettings)]


@hookimpl
def mailproxy_register_reporters() -> list[ReporterSpec]:
    """The ``http`` reporter, built from the kernel's ``reporter_http`` settings."""
    return [ReporterSpec("http", HttpReporter.from_kernel)]
