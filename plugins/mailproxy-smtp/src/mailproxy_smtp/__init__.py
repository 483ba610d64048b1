"""mail-proxy plugin ``smtp``: the SMTP transport (pooled aiosmtplib sessions, TLS modes).

Accounts with ``"transport": "smtp"`` (the default) send through it. Settings live in
``[plugins.smtp]`` (``SmtpSettings``); see the plugin's README for pooling, TLS and error classes.
"""

from __future__ import annotations

from mailproxy_core import ErrorClass, SettingsSpec, TransportSpec, hookimpl

from .classify import classify_smtp_error
from .settings import SmtpSettings
from .transport import SmtpTransport

__version__ = "0.1.0"

__all__ = ["SmtpSettings", "SmtpTransport"]


@hookimpl
def mailproxy_register_settings() -> list[SettingsSpec]:
    """The ``[plugins.smtp]`` section."""
    return [SettingsSpec("smtp", SmtpSettings)]


@hookimpl
def mailproxy_register_transports() -> list[TransportSpec]:
    """The ``smtp`` transport, built from the kernel's ``smtp`` settings."""
    return [TransportSpec("smtp", SmtpTransport.from_kernel)]


@hookimpl
def mailproxy_classify_error(error: BaseException) -> ErrorClass | None:
    """Raw aiosmtplib exceptions: 4xx, timeouts and disconnects transient, 5xx permanent."""
    return classify_smtp_error(error)
