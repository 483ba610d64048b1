"""Real SMTP servers on loopback for the ``smtp`` plugin's tests.

``smtp_server(**options)`` starts an aiosmtpd server in the test's event loop, driven by a
``ScriptedHandler``: queue replies per stage (MAIL, RCPT, DATA, NOOP) with
``server.handler.script("RCPT", "550 ...")`` (one reply per call, then ``250``), fix a reply
per recipient in ``handler.rcpt_replies``, or queue one of two actions instead of a reply:

- ``"drop"``: close the connection instead of answering (at DATA: after the message arrived);
- ``"stall"``: never answer, until the client gives up or the test ends.

The server counts connections (``connections``, ``open``, ``peak_open``), records accepted
messages (``handler.messages``) and every scripted command (``handler.calls``).
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import time
import warnings
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mailproxy_core import Account
from mailproxy_smtp import SmtpSettings, SmtpTransport

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
def wait_until() -> Callable[..., Awaitable[None]]:
    """``await wait_until(condition, within=5)``: see ``eventually``."""
    return eventually


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


@pytest.fixture
async def smtp_transport() -> AsyncIterator[Callable[..., SmtpTransport]]:
    """Factory: ``smtp_transport(**settings)`` with test-friendly timeouts; closed afterwards."""
    transports: list[SmtpTransport] = []

    def build(**settings: Any) -> SmtpTransport:
        values: dict[str, Any] = {
            "local_hostname": "client.test",
            "connect_timeout": 5.0,
            "command_timeout": 5.0,
            "data_timeout": 5.0,
            "close_timeout": 1.0,
        }
        values.update(settings)
        transport = SmtpTransport(SmtpSettings(**values))
        transports.append(transport)
        return transport

    yield build
    for transport in transports:
        await transport.aclose()


def account_for(server: ScriptedServer, **fields: Any) -> Account:
    """An account of tenant ``acme`` pointing at a test server, plain text unless told."""
    values: dict[str, Any] = {
        "pk": "acme-main",
        "tenant_id": "acme",
        "id": "main",
        "host": "127.0.0.1",
        "port": server.port,
        "use_tls": False,
    }
    values.update(fields)
    return Account(**values)


@pytest.fixture
def make_account() -> Callable[..., Account]:
    """``make_account(server, **fields)``: an account for a test server (see ``account_for``)."""
    return account_for


def make_authenticator(user: str, password: str) -> Callable[..., AuthResult]:
    """An aiosmtpd authenticator accepting exactly one user and password."""

    def authenticate(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            user.encode(),
            password.encode(),
        )
        # handled=False: aiosmtpd answers a failure itself (535); auth_data records the login.
        return AuthResult(success=ok, handled=False, auth_data=data if ok else None)

    return authenticate


@pytest.fixture
def authenticator() -> Callable[[str, str], Callable[..., AuthResult]]:
    """``authenticator(user, password)`` for aiosmtpd's ``authenticator=`` option."""
    return make_authenticator


@dataclass(frozen=True)
class TlsFiles:
    """A self-signed certificate for 127.0.0.1 / localhost and its key, as PEM files."""

    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """Generated once per session with ``cryptography`` (EC P-256, valid one day)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mail-proxy test server")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("tls")
    files = TlsFiles(directory / "cert.pem", directory / "key.pem")
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files
