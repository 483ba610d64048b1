"""The ``null`` transport: accepts every message and delivers nothing (dry runs, benchmarks)."""

from __future__ import annotations

from ..models import Account, Envelope, SendResult
from ..plugins.markers import hookimpl
from ..specs import TransportSpec


class NullTransport:
    """Accepts every recipient without sending anything."""

    def __init__(self, mp: object = None) -> None:
        self.sent = 0

    async def send(self, account: Account, envelope: Envelope, mime_bytes: bytes) -> SendResult:
        self.sent += 1
        return SendResult(accepted=envelope.recipients, response="250 discarded by null transport")


@hookimpl
def mailproxy_register_transports() -> list[TransportSpec]:
    return [TransportSpec("null", NullTransport)]
