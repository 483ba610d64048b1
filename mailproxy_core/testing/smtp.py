"""Real SMTP servers on loopback for tests of the dispatcher and of transport plugins.

``ScriptedServer`` runs aiosmtpd in the test's event loop, driven by a ``ScriptedHandler``: queue
replies per stage (MAIL, RCPT, DATA, NOOP) with ``server.handler.script("RCPT", "550 ...")``
(one reply per call, then ``250``), fix a reply per recipient in ``handler.rcpt_replies``, or
queue one of two actions instead of a reply:

- ``"drop"``: close the connection instead of answering (at DATA: after the message arrived);
- ``"stall"``: never answer, until the client gives up or the test ends.

The server counts connections (``connections``, ``open``, ``peak_open``), records accepted
messages (``handler.messages``) and every scripted command (``handler.calls``). The
``smtp_server`` fixture (enabled with the rest of ``mailproxy_core.testing.plugin``) starts them
and stops them after the test. Needs ``aiosmtpd`` (a test dependency).
"""

from __future__ import annotations

import asyncio
import ssl
import time
import warnings
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, LoginPassword, Session

DROP = "drop"
STALL = "stall"


@dataclass
class Received:
    """A message the server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    mail_options: list[str]
    tls: bool
    user: str | None


@dataclass
class ScriptedHandler:
    """aiosmtpd handler whose MAIL, RCPT, DATA and NOOP replies are scripted per call."""

    replies: dict[str, deque[str]] = field(
        default_factory=lambda: {stage: deque() for stage in ("MAIL", "RCPT", "DATA", "NOOP")}
    )
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    messages: list[Received] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)
    unstall: asyncio.Event = field(default_factory=asyncio.Event)
    data_seen: list[bytes] = field(default_factory=list)
    """Every message body received at DATA, whatever the scripted reply."""

    def script(self, stage: str, *replies: str) -> None:
        """Queue replies (or ``"drop"`` / ``"stall"``) for the next calls of ``stage``."""
        self.replies[stage].extend(replies)

    async def _answer(self, server: SMTP, stage: str, default: str) -> str:
        self.calls[stage] += 1
        queued = self.replies[stage]
        reply = queued.popleft() if queued else default
        if reply == DROP:
            assert server.transport is not None
            server.transport.close()
            return "421 4.4.2 never seen by the client"
        if reply == STALL:
            await self.unstall.wait()
            return "451 4.4.2 too late"
        return reply

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = await self._answer(server, "MAIL", "250 OK")
        if reply.startswith("250"):
            envelope.mail_from = address
            envelope.mail_options.extend(options)
        return reply

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = await self._answer(server, "RCPT", self.rcpt_replies.get(address, "250 OK"))
        if reply.startswith("250"):
            envelope.rcpt_tos.append(address)
        return reply

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if envelope.original_content is not None:
            self.data_seen.append(envelope.original_content)
        reply = await self._answer(server, "DATA", "250 2.0.0 Ok: queued")
        if reply.startswith("250"):
            assert envelope.mail_from is not None and envelope.original_content is not None
            assert server.transport is not None
            login = (
                session.auth_data.login if isinstance(session.auth_data, LoginPassword) else None
            )
            self.messages.append(
                Received(
                    mail_from=envelope.mail_from,
                    rcpt_tos=list(envelope.rcpt_tos),
                    content=envelope.original_content,
                    mail_options=list(envelope.mail_options),
                    tls=server.transport.get_extra_info("ssl_object") is not None,
                    user=login.decode() if login is not None else None,
                )
            )
        return reply

    async def handle_NOOP(
        self, server: SMTP, session: Session, envelope: Envelope, arg: str
    ) -> str:
        return await self._answer(server, "NOOP", "250 OK")


class _TrackedSMTP(SMTP):
    """aiosmtpd's protocol, reporting its connection's life to the owning server."""

    def __init__(self, owner: ScriptedServer, *args: Any, **kwargs: Any) -> None:
        self._owner = owner
        super().__init__(*args, **kwargs)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._owner.opened(self)  # also called again after STARTTLS; counted once

    def connection_lost(self, error: Exception | None) -> None:
        self._owner.open.discard(self)
        super().connection_lost(error)


class ScriptedServer:
    """An aiosmtpd server on 127.0.0.1 in the running loop, counting its connections."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None, **smtp_options: Any) -> None:
        self.handler = ScriptedHandler()
        self.ssl_context = ssl_context
        self.smtp_options = smtp_options
        self.connections = 0
        self.open: set[_TrackedSMTP] = set()
        self.peak_open = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> ScriptedServer:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._protocol, "127.0.0.1", 0, ssl=self.ssl_context
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def _protocol(self) -> _TrackedSMTP:
        self.connections += 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "AUTH without TLS" is deliberate in these tests
            return _TrackedSMTP(
                self,
                self.handler,
                hostname="mx.test",
                loop=asyncio.get_running_loop(),
                **self.smtp_options,
            )

    def opened(self, protocol: _TrackedSMTP) -> None:
        if protocol not in self.open:
            self.open.add(protocol)
            self.peak_open = max(self.peak_open, len(self.open))

    def drop_connections(self) -> None:
        """Close every client connection, as a server's idle timeout does."""
        for protocol in list(self.open):
            if protocol.transport is not None:
                protocol.transport.close()

    async def stop(self) -> None:
        self.handler.unstall.set()
        if self._server is not None:
            self._server.close()
        self.drop_connections()
        if self._server is not None:
            await self._server.wait_closed()
        await eventually(lambda: not self.open)


async def eventually(condition: Callable[[], bool], within: float = 5.0) -> None:
    """Wait until ``condition()`` holds; fail after ``within`` seconds (generous on purpose)."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


@pytest.fixture
async def smtp_server() -> AsyncIterator[Callable[..., Awaitable[ScriptedServer]]]:
    """Factory: ``await smtp_server(ssl_context=..., **aiosmtpd_options)``; stopped afterwards."""
    servers: list[ScriptedServer] = []

    async def start(ssl_context: ssl.SSLContext | None = None, **options: Any) -> ScriptedServer:
        server = await ScriptedServer(ssl_context, **options).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()
