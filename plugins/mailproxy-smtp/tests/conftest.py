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

import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mailproxy_core import Account
from mailproxy_core.testing.smtp import (  # noqa: F401  (re-exported to the tests)
    DROP,
    STALL,
    Received,
    ScriptedHandler,
    ScriptedServer,
    eventually,
)
from mailproxy_smtp import SmtpSettings, SmtpTransport


@pytest.fixture
def wait_until() -> Callable[..., Awaitable[None]]:
    """``await wait_until(condition, within=5)``: see ``eventually``."""
    return eventually


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
