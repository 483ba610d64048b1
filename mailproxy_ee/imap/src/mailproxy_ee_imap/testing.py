"""A private Dovecot IMAP server on loopback for tests (and benchmarks).

``DovecotServer`` writes a throw-away configuration, password file and Maildir tree into a short
temporary directory, runs ``dovecot -F -c <config>`` on a free 127.0.0.1 port and stops it by PID
with SIGTERM. With ``tls=True`` it also serves implicit TLS on ``imaps_port`` and offers STARTTLS
on ``port``, with a self-signed certificate for 127.0.0.1 (``client_ssl_context()`` trusts it).
Dovecot does not re-read its password file, so every user is given at construction.

Pytest fixtures (import them into a ``conftest.py``:
``from mailproxy_ee_imap.testing import dovecot, dovecot_tls, imap_mailbox  # noqa: F401``):

* ``dovecot`` — one plain-IMAP server per test session (users ``TEST_USERS``); skipped with the
  reason when the ``dovecot`` binary is not installed (``make test-deps`` installs it).
* ``dovecot_tls`` — the same with TLS (implicit TLS and STARTTLS).
* ``imap_mailbox`` — a fresh, empty folder of user ``mailbox`` on ``dovecot`` per test:
  ``imap_mailbox.settings`` (an ``ImapSettings``), ``imap_mailbox.append(raw)``.

``eventually(probe, nudge=...)`` waits for what a receipt handler records after a message was
APPENDed (``await eventually(lambda: history(...), nudge=run_now)``), then the test asserts.

Needs the Debian package ``dovecot-imapd`` (Dovecot 2.3) and, for TLS, ``cryptography``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import grp
import imaplib
import itertools
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from .client import ImapSettings
from .names import encode_mailbox_name

T = TypeVar("T")

TEST_USERS: Mapping[str, str] = {
    "mailbox": "mailbox-secret",
    "bounces": "bounces-secret",
    **{f"user{i}": f"user{i}-secret" for i in range(1, 9)},
}
"""The users of the session fixtures' servers (name → password)."""

_CONFIG = """\
protocols = imap
listen = 127.0.0.1
base_dir = {dir}/run
state_dir = {dir}/run
ssl = {ssl}
{ssl_files}disable_plaintext_auth = no
auth_mechanisms = plain login
# tests log in with wrong passwords on purpose: answer at once, no growing penalty
auth_failure_delay = 0
log_path = {dir}/dovecot.log
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
mail_location = maildir:{dir}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {dir}/users
}}
userdb {{
  driver = static
  args = uid={user} gid={group} home={dir}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
  }}
  chroot =
}}
service anvil {{
  chroot =
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""


class DovecotUnavailable(RuntimeError):
    """The ``dovecot`` binary is not installed (``make test-deps`` installs ``dovecot-imapd``)."""


def dovecot_binary() -> str | None:
    """Path of the ``dovecot`` binary, or None (looks in PATH and in /usr/sbin)."""
    found = shutil.which("dovecot")
    if found:
        return found
    for candidate in ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DovecotServer:
    """One private Dovecot instance; ``start()``/``stop()`` or use it as a context manager."""

    host = "127.0.0.1"

    def __init__(self, users: Mapping[str, str] | None = None, *, tls: bool = False) -> None:
        self.users = dict(users or TEST_USERS)
        for name, password in self.users.items():
            if not name or any(c in name + password for c in ":\n\r"):
                raise ValueError(f"user {name!r}: names and passwords hold no ':' or line break")
        self.tls = tls
        self.port = 0
        self.imaps_port = 0
        self.directory: Path | None = None
        self.cert_path: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._folders = itertools.count(1)

    def __enter__(self) -> DovecotServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, attempts: int = 3) -> DovecotServer:
        """Start the server and wait until it accepts connections.

        Raises:
            DovecotUnavailable: no ``dovecot`` binary.
            RuntimeError: it did not start (the text holds the end of its log).
        """
        binary = dovecot_binary()
        if binary is None:
            raise DovecotUnavailable(
                "the dovecot binary is not installed (Debian package dovecot-imapd; "
                "`make test-deps` installs it)"
            )
        last_error = ""
        for _ in range(attempts):
            try:
                self._start_once(binary)
                return self
            except RuntimeError as exc:  # a port taken between free_port() and bind()
                last_error = str(exc)
                self.stop()
        raise RuntimeError(last_error)

    def _start_once(self, binary: str) -> None:
        # unix sockets live in the directory: keep its path short
        self.directory = Path(tempfile.mkdtemp(prefix="dc", dir="/tmp"))
        d = self.directory
        os.chmod(d, 0o755)
        (d / "run").mkdir()
        (d / "mail").mkdir()
        self.port = free_port()
        self.imaps_port = free_port() if self.tls else 0
        user, group = _service_account()
        ssl_files = ""
        if self.tls:
            cert, key = _self_signed_certificate(d)
            self.cert_path = cert
            ssl_files = f"ssl_cert = <{cert}\nssl_key = <{key}\n"
        (d / "dovecot.conf").write_text(
            _CONFIG.format(
                dir=d,
                ssl="yes" if self.tls else "no",
                ssl_files=ssl_files,
                user=user,
                group=group,
                port=self.port,
                imaps_port=self.imaps_port,
            )
        )
        (d / "users").write_text(
            "".join(f"{name}:{{PLAIN}}{password}\n" for name, password in self.users.items())
        )
        if os.geteuid() == 0:
            info = pwd.getpwnam(user)
            os.chown(d / "mail", info.pw_uid, info.pw_gid)
        self._process = subprocess.Popen(
            [binary, "-F", "-c", str(d / "dovecot.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"dovecot exited at start: {self._log_tail()}")
            if _accepts(self.host, self.port) and (
                not self.tls or _accepts(self.host, self.imaps_port)
            ):
                return
            time.sleep(0.05)
        raise RuntimeError(f"dovecot did not listen within 15 s: {self._log_tail()}")

    def stop(self) -> None:
        """Stop the server (SIGTERM to its PID) and delete its directory."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if process is not None and process.stderr is not None:
            process.stderr.close()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    @property
    def running(self) -> bool:
        """The server process is alive."""
        return self._process is not None and self._process.poll() is None

    def _log_tail(self) -> str:
        texts: list[str] = []
        if self.directory is not None and (self.directory / "dovecot.log").exists():
            texts.append((self.directory / "dovecot.log").read_text(errors="replace")[-1500:])
        if self._process is not None and self._process.stderr is not None:
            with contextlib.suppress(OSError, ValueError):
                if self._process.poll() is not None:
                    texts.append(self._process.stderr.read().decode(errors="replace")[-1500:])
        return "\n".join(texts) or "(no log)"

    # -- clients ---------------------------------------------------------------------------

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's certificate (TLS servers only)."""
        if self.cert_path is None:
            raise RuntimeError("this Dovecot server runs without TLS")
        return ssl.create_default_context(cafile=str(self.cert_path))

    def settings(
        self,
        user: str = "mailbox",
        folder: str = "INBOX",
        *,
        implicit_tls: bool = False,
        password: str | None = None,
        timeout: float = 10.0,
    ) -> ImapSettings:
        """``ImapSettings`` for a user of this server: plain (STARTTLS when the server has TLS)
        on ``port``, or implicit TLS on ``imaps_port``."""
        if implicit_tls and not self.tls:
            raise RuntimeError("this Dovecot server runs without TLS")
        return ImapSettings(
            host=self.host,
            port=self.imaps_port if implicit_tls else self.port,
            ssl=implicit_tls,
            user=user,
            password=self.users[user] if password is None else password,
            folder=folder,
            timeout=timeout,
            ssl_context=self.client_ssl_context() if self.tls else None,
        )

    @contextlib.contextmanager
    def imap(self, user: str = "mailbox") -> Iterator[imaplib.IMAP4]:
        """A logged-in standard-library client (blocking; for setting up test data)."""
        client = imaplib.IMAP4(self.host, self.port, timeout=10)
        try:
            client.login(user, self.users[user])
            yield client
        finally:
            with contextlib.suppress(OSError, imaplib.IMAP4.error):
                client.logout()

    def create_folder(self, folder: str, user: str = "mailbox") -> None:
        """Create a folder (an existing one is fine)."""
        with self.imap(user) as client:
            client.create(encode_mailbox_name(folder))

    def new_folder(self, user: str = "mailbox", prefix: str = "t") -> str:
        """Create a folder with a name not used before and return its name."""
        name = f"{prefix}{next(self._folders)}-{uuid.uuid4().hex[:8]}"
        self.create_folder(name, user)
        return name

    def append(
        self,
        messages: bytes | Iterable[bytes],
        folder: str = "INBOX",
        user: str = "mailbox",
        *,
        seen: bool = False,
    ) -> None:
        """Deliver one or more raw messages into ``folder`` with IMAP APPEND."""
        batch = [messages] if isinstance(messages, bytes) else list(messages)
        with self.imap(user) as client:
            for raw in batch:
                status, data = client.append(
                    encode_mailbox_name(folder), "(\\Seen)" if seen else "", None, raw
                )
                if status != "OK":
                    raise RuntimeError(f"APPEND to {folder!r} refused: {data!r}")

    def write_maildir(
        self, messages: Iterable[bytes], folder: str = "INBOX", user: str = "mailbox"
    ) -> int:
        """Deliver many messages fast by writing Maildir files (the folder must exist, so
        create it first). Dovecot assigns their UIDs when a client next looks. Returns how
        many were written."""
        if self.directory is None:
            raise RuntimeError("the server is not started")
        base = self.directory / "mail" / user
        target = base if folder.upper() == "INBOX" else base / ("." + folder)
        for sub in ("tmp", "new", "cur"):
            (target / sub).mkdir(parents=True, exist_ok=True)
        owner = pwd.getpwnam(_service_account()[0]) if os.geteuid() == 0 else None
        count = 0
        stamp = int(time.time())
        for raw in messages:
            name = f"{stamp}.M{count}P{os.getpid()}Q{uuid.uuid4().hex[:12]}.test"
            tmp = target / "tmp" / name
            tmp.write_bytes(raw)
            if owner is not None:
                os.chown(tmp, owner.pw_uid, owner.pw_gid)
            os.rename(tmp, target / "new" / name)
            count += 1
        if owner is not None:
            for path in [base, *base.rglob("*")]:
                if path.is_dir():
                    os.chown(path, owner.pw_uid, owner.pw_gid)
        return count


@dataclass
class TestMailbox:
    """A fresh folder on a running ``DovecotServer`` (see the ``imap_mailbox`` fixture)."""

    __test__ = False  # not a test class, despite the name

    server: DovecotServer
    user: str
    folder: str

    @property
    def settings(self) -> ImapSettings:
        """``ImapSettings`` that read this folder."""
        return self.server.settings(self.user, self.folder)

    @property
    def password(self) -> str:
        """The user's password."""
        return self.server.users[self.user]

    def append(self, messages: bytes | Iterable[bytes], *, seen: bool = False) -> None:
        """Deliver raw messages into this folder with IMAP APPEND."""
        self.server.append(messages, self.folder, self.user, seen=seen)


async def eventually(
    probe: Callable[[], Awaitable[T]],
    *,
    until: Callable[[T], bool] = bool,
    nudge: Callable[[], Awaitable[object]] | None = None,
    within: float = 15.0,
    interval: float = 0.05,
) -> T:
    """``await probe()`` until ``until(result)`` holds (by default: the result is truthy), and
    return that result.

    What a receipt handler reads from a mailbox arrives asynchronously (an IDLE push, a poll
    asked for with ``run_now``, a timed round), so a test that APPENDs a message waits for its
    effect with this helper, then asserts on it. ``nudge`` (e.g. a ``run_now`` call) is awaited
    after each unsatisfied round. ``AssertionError`` with the last result after ``within``
    seconds.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = await probe()
        if until(result):
            return result
        if loop.time() > deadline:
            raise AssertionError(f"still {result!r} after {within} s")
        if nudge is not None:
            await nudge()
        await asyncio.sleep(interval)


def _service_account() -> tuple[str, str]:
    """The unprivileged user/group Dovecot runs as: nobody/nogroup as root, else ourselves."""
    if os.geteuid() == 0:
        try:
            grp.getgrnam("nogroup")
            return "nobody", "nogroup"
        except KeyError:
            return "nobody", "nobody"
    return pwd.getpwuid(os.geteuid()).pw_name, grp.getgrgid(os.getegid()).gr_name


def _accepts(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def _self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "cert.pem"
    key_path = directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    os.chmod(key_path, 0o600)
    return cert_path, key_path


def _start_or_skip(tls: bool) -> DovecotServer:
    try:
        return DovecotServer(tls=tls).start()
    except DovecotUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def dovecot() -> Iterator[DovecotServer]:
    """A plain-IMAP Dovecot on loopback for the whole test session (users ``TEST_USERS``)."""
    server = _start_or_skip(tls=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def dovecot_tls() -> Iterator[DovecotServer]:
    """A Dovecot with TLS (implicit on ``imaps_port``, STARTTLS on ``port``) for the session."""
    server = _start_or_skip(tls=True)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def imap_mailbox(dovecot: DovecotServer) -> TestMailbox:
    """A fresh, empty folder of user ``mailbox`` on the session's ``dovecot``."""
    return TestMailbox(dovecot, "mailbox", dovecot.new_folder("mailbox"))
