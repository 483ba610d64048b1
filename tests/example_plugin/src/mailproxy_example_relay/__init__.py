"""Example third-party plugin: the ``http-relay`` transport POSTs each message to a URL."""

from __future__ import annotations

import base64

from pydantic import BaseModel

from mailproxy_core import (
    Account,
    Envelope,
    MailProxy,
    PermanentSendError,
    SendResult,
    SettingsSpec,
    TransientSendError,
    TransportSpec,
    hookimpl,
)


class RelaySettings(BaseModel):
    """``[plugins.example_relay]`` / ``MAILPROXY_EXAMPLE_RELAY__TIMEOUT``."""

    timeout: float = 10.0


class HttpRelayTransport:
    """Sends ``{"from", "to", "mime"}`` to the account's ``options.url``."""

    def __init__(self, mp: MailProxy) -> None:
        self.http = mp.http
        settings = mp.plugin_settings("example_relay")
        assert isinstance(settings, RelaySettings)
        self.timeout = settings.timeout

    async def send(self, account: Account, envelope: Envelope, mime_bytes: bytes) -> SendResult:
        body = {
            "from": envelope.sender,
            "to": list(envelope.recipients),
            "mime": base64.b64encode(mime_bytes).decode(),
        }
        response = await self.http.post(account.options["url"], json=body, timeout=self.timeout)
        if response.status_code >= 500:
            raise TransientSendError(f"{response.status_code} relay unavailable")
        if response.status_code >= 400:
            raise PermanentSendError(f"{response.status_code} relay refused the message")
        return SendResult(accepted=envelope.recipients, response=f"{response.status_code} relayed")


@hookimpl
def mailproxy_register_settings() -> list[SettingsSpec]:
    return [SettingsSpec("example_relay", RelaySettings)]


@hookimpl
def mailproxy_register_transports() -> list[TransportSpec]:
    return [TransportSpec("http-relay", HttpRelayTransport)]
