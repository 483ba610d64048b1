"""A counting SMTP sink for multi-process dispatcher tests (aiosmtpd in the test's event loop).

One ``CountingSink`` listens on one port per account, so what arrives on a port is one account's
traffic. It records every accepted message's ``X-Genro-Mail-ID`` in arrival order, how many DATA
transactions were open at once per port (the per-account in-flight figure), and how many DATA
transactions have started. ``data_delay`` holds each DATA open for a while, so overlapping sends
really overlap.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from typing import Any

from aiosmtpd.smtp import SMTP

_MAIL_ID = re.compile(rb"^X-Genro-Mail-ID: *(\S+)", re.MULTILINE | re.IGNORECASE)


class CountingSink:
    """aiosmtpd servers on 127.0.0.1, one per name, counting what they accept."""

    def __init__(self, names: list[str], data_delay: float = 0.0) -> None:
        self.names = names
        self.data_delay = data_delay
        self.ports: dict[str, int] = {}
        self.arrivals: list[str] = []
        self.delivered: Counter[str] = Counter()
        self.open: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.started = 0
        self._servers: list[asyncio.Server] = []

    async def start(self) -> CountingSink:
        loop = asyncio.get_running_loop()
        for name in self.names:
            server = await loop.create_server(
                lambda name=name: SMTP(_Handler(self, name), hostname="sink.test"), "127.0.0.1", 0
            )
            self._servers.append(server)
            self.ports[name] = server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        for server in self._servers:
            await server.wait_closed()


class _Handler:
    def __init__(self, sink: CountingSink, name: str) -> None:
        self.sink = sink
        self.name = name

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        sink = self.sink
        sink.started += 1
        sink.open[self.name] += 1
        sink.peak[self.name] = max(sink.peak[self.name], sink.open[self.name])
        try:
            if sink.data_delay:
                await asyncio.sleep(sink.data_delay)
            found = _MAIL_ID.search(envelope.original_content or b"")
            mail_id = found.group(1).decode() if found else "?"
            sink.arrivals.append(mail_id)
            sink.delivered[mail_id] += 1
        finally:
            sink.open[self.name] -= 1
        return "250 2.0.0 Ok: queued"
