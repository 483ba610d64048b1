"""An IMAP mailbox reader on aioimaplib: connect, log in, select, read new mail, flag it, IDLE.

The bounce and PEC plugins read their mailboxes through ``ImapMailbox``. Every server round trip
is bounded by ``ImapSettings.timeout``; every failure is raised as an ``ImapError`` subclass
whose text names the server and what failed, never the password (the password is also masked in
aioimaplib's own debug log). After a timeout or a lost connection the mailbox must be closed and
connected again; the reader never retries by itself (the caller owns the back-off).
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections.abc import AsyncIterator, Awaitable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from ssl import SSLContext
from types import TracebackType
from typing import Any, TypeVar

from aioimaplib import aioimaplib

from .errors import (
    ImapAuthError,
    ImapConnectionError,
    ImapError,
    ImapFolderError,
    ImapProtocolError,
    ImapTimeout,
)
from .names import encode_mailbox_name, uid_set

log = logging.getLogger(__name__)

T = TypeVar("T")

_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]", re.IGNORECASE)
_UIDNEXT = re.compile(rb"\[UIDNEXT (\d+)\]", re.IGNORECASE)
_EXISTS = re.compile(rb"^(\d+) EXISTS", re.IGNORECASE)
_FETCH_UID = re.compile(rb"\bUID (\d+)", re.IGNORECASE)
_FETCH_START = re.compile(rb"^\d+ FETCH \(", re.IGNORECASE)
_PUSH_CHANGE = re.compile(rb"^\d+ (EXISTS|RECENT)\b", re.IGNORECASE)

DEFAULT_TIMEOUT = 30.0
"""Seconds one server round trip may take unless ``ImapSettings.timeout`` says otherwise."""

IDLE_MAX = 25 * 60.0
"""Longest single IDLE: servers may drop a client idle for 30 minutes (RFC 2177)."""


@dataclass(frozen=True, slots=True)
class ImapSettings:
    """Where a mailbox is and how to reach it.

    ``ssl`` true is implicit TLS (usually port 993); false is plain IMAP (usually 143), upgraded
    with STARTTLS when the server offers it. ``ssl_context`` replaces the default certificate
    checks (tests pass one that trusts their own CA). The password never appears in ``repr``.
    """

    host: str
    port: int = 993
    ssl: bool = True
    user: str = ""
    password: str = field(default="", repr=False)
    folder: str = "INBOX"
    timeout: float = DEFAULT_TIMEOUT
    ssl_context: SSLContext | None = field(default=None, repr=False, compare=False)

    @property
    def address(self) -> str:
        """``host:port``, for texts and logs."""
        return f"{self.host}:{self.port}"

    @property
    def mailbox_key(self) -> str:
        """Identifies the mailbox (server, user, folder): when it changes, saved UIDs are void."""
        return f"{self.host.lower()}:{self.port}/{self.user}/{self.folder}"


@dataclass(frozen=True, slots=True)
class FolderStatus:
    """What SELECT reported: ``uidvalidity`` scopes every UID; ``uidnext`` may be unknown."""

    folder: str
    uidvalidity: int
    uidnext: int | None
    exists: int


@dataclass(frozen=True, slots=True)
class FetchedMessage:
    """One message as stored on the server (``BODY.PEEK[]``, so not flagged ``\\Seen``)."""

    uid: int
    raw: bytes


class _SecretMask(logging.Filter):
    """Masks the passwords being sent in aioimaplib's debug records (its own scrub misses a
    password that needs quoting)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            text = record.getMessage()
            masked = text
            for secret in self.secrets:
                masked = masked.replace(secret, "***")
            if masked != text:
                record.msg, record.args = masked, ()
        return True

    @contextmanager
    def masking(self, *secrets: str) -> Iterator[None]:
        live = [s for s in secrets if s]
        for secret in live:
            self.secrets[secret] = self.secrets.get(secret, 0) + 1
        try:
            yield
        finally:
            for secret in live:
                left = self.secrets.get(secret, 1) - 1
                if left <= 0:
                    self.secrets.pop(secret, None)
                else:
                    self.secrets[secret] = left


_MASK = _SecretMask()
logging.getLogger(aioimaplib.__name__).addFilter(_MASK)


class ImapMailbox:
    """A connection to one mailbox. Use ``async with ImapMailbox(settings) as box:``.

    Typical round: ``connect()``, ``select()`` (compare ``uidvalidity`` with the saved one),
    ``async for msg in fetch_new(last_uid)``: handle it, then ``mark_seen([msg.uid])`` and save
    ``msg.uid``; then ``idle(max_wait)`` where ``supports_idle``; ``close()``.
    """

    def __init__(self, settings: ImapSettings) -> None:
        self.settings = settings
        self._imap: aioimaplib.IMAP4 | None = None
        self._lost: asyncio.Future[None] | None = None
        self._broken: str | None = None
        self._tls = False
        self._selected: FolderStatus | None = None

    # -- state -----------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Connected and logged in, and no earlier failure left the session unusable."""
        return self._imap is not None and self._broken is None

    @property
    def tls(self) -> bool:
        """The connection is encrypted (implicit TLS or after STARTTLS)."""
        return self._tls

    @property
    def capabilities(self) -> frozenset[str]:
        """The server's capabilities as last announced (upper case)."""
        if self._imap is None:
            return frozenset()
        return frozenset(c.upper() for c in self._imap.protocol.capabilities)

    @property
    def supports_idle(self) -> bool:
        """The server offers IDLE (RFC 2177)."""
        return "IDLE" in self.capabilities

    @property
    def selected(self) -> FolderStatus | None:
        """The folder selected last, or None."""
        return self._selected

    # -- session ---------------------------------------------------------------------------

    async def __aenter__(self) -> ImapMailbox:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the connection, upgrade it with STARTTLS when plain and offered, and log in.

        Raises:
            ImapConnectionError: unreachable, TLS failure, or the connection dropped.
            ImapTimeout: no greeting or answer within the timeout.
            ImapAuthError: user name or password refused, or login disabled by the server.
        """
        if self._imap is not None:
            raise RuntimeError("ImapMailbox.connect() called twice; close() it first")
        s = self.settings
        loop = asyncio.get_running_loop()
        self._lost = loop.create_future()
        self._broken = None
        self._selected = None
        context = (s.ssl_context or ssl.create_default_context()) if s.ssl else None
        try:
            self._imap = aioimaplib.IMAP4(
                host=s.host,
                port=s.port,
                timeout=s.timeout,
                conn_lost_cb=self._connection_lost,
                ssl_context=context,
            )
            await self._call(self._imap.wait_hello_from_server(), "connect")
            self._tls = s.ssl
            if not s.ssl and "STARTTLS" in self.capabilities:
                await self._starttls()
            await self._login()
        except BaseException:
            await self._drop()
            raise

    async def close(self) -> None:
        """Log out and close the connection; never raises (a dead server is just dropped)."""
        if self._imap is None:
            return
        imap = self._imap
        try:
            if self._broken is None:
                if imap.has_pending_idle():
                    imap.idle_done()
                await asyncio.wait_for(imap.protocol.logout(), min(self.settings.timeout, 5.0))
        except (TimeoutError, aioimaplib.AioImapException, OSError, ValueError) as exc:
            log.debug("IMAP logout from %s failed: %s", self.settings.address, type(exc).__name__)
        finally:
            await self._drop()

    # -- folder ----------------------------------------------------------------------------

    async def select(self, folder: str | None = None) -> FolderStatus:
        """Select ``folder`` (default: the settings' folder) read-write.

        Raises:
            ImapFolderError: the server refused it (no such folder, no rights).
            ImapError: connection, timeout or protocol failure.
        """
        name = folder or self.settings.folder
        try:
            wire = encode_mailbox_name(name)
        except ValueError as exc:
            raise ImapFolderError(f"folder {name!r}: {exc}") from None
        imap = self._session()
        response = await self._call(imap.protocol.select(wire), f"SELECT {name}")
        if response.result != "OK":
            raise ImapFolderError(
                f"folder {name!r} cannot be selected on {self.settings.address}: "
                f"{_last_text(response)}"
            )
        joined = b"\n".join(bytes(line) for line in response.lines)
        validity = _UIDVALIDITY.search(joined)
        if validity is None:
            raise ImapProtocolError(
                f"{self.settings.address} gave no UIDVALIDITY for folder {name!r}"
            )
        uidnext = _UIDNEXT.search(joined)
        exists = 0
        for line in response.lines:
            match = _EXISTS.match(bytes(line))
            if match:
                exists = int(match.group(1))
        self._selected = FolderStatus(
            folder=name,
            uidvalidity=int(validity.group(1)),
            uidnext=int(uidnext.group(1)) if uidnext else None,
            exists=exists,
        )
        return self._selected

    async def create_folder(self, name: str) -> None:
        """Create a folder; one that already exists is fine.

        Raises:
            ImapFolderError: the server refused to create it.
        """
        imap = self._session()
        response = await self._call(
            imap.protocol.simple_command("CREATE", encode_mailbox_name(name)), f"CREATE {name}"
        )
        if response.result != "OK" and b"ALREADYEXISTS" not in b" ".join(
            bytes(line).upper() for line in response.lines
        ):
            raise ImapFolderError(
                f"folder {name!r} cannot be created on {self.settings.address}: "
                f"{_last_text(response)}"
            )

    # -- messages --------------------------------------------------------------------------

    async def uids_after(self, last_uid: int) -> list[int]:
        """UIDs in the selected folder greater than ``last_uid``, ascending.

        Raises:
            ImapError: connection, timeout or protocol failure.
        """
        imap = self._session()
        response = await self._call(
            imap.protocol.search("UID", f"{last_uid + 1}:*", charset=None, by_uid=True),
            "UID SEARCH",
        )
        self._expect_ok(response, "UID SEARCH")
        uids: set[int] = set()
        for line in response.lines[:-1]:  # the last line is the tagged status text
            tokens = bytes(line).split()
            if tokens and tokens[0].upper() == b"SEARCH":  # aioimaplib may keep the keyword
                tokens = tokens[1:]
            if all(tok.isdigit() for tok in tokens):
                uids.update(int(tok) for tok in tokens)
        # "n:*" always matches the highest UID, even when it is below n (RFC 3501 6.4.8)
        return sorted(uid for uid in uids if uid > last_uid)

    async def fetch(self, uids: Sequence[int]) -> list[FetchedMessage]:
        """The raw bytes of these messages with ``BODY.PEEK[]`` (no ``\\Seen`` flag set), in UID
        order; UIDs that no longer exist are left out.

        Raises:
            ImapError: connection, timeout (no data for ``timeout`` seconds) or protocol failure.
        """
        if not uids:
            return []
        imap = self._session()
        response = await self._call(
            imap.protocol.fetch(
                uid_set(uids), "(UID BODY.PEEK[])", by_uid=True, timeout=self.settings.timeout
            ),
            "UID FETCH",
            deadline=None,
        )
        self._expect_ok(response, "UID FETCH")
        return sorted(_parse_fetch(response.lines), key=lambda m: m.uid)

    async def fetch_new(
        self, last_uid: int, *, batch_size: int = 20
    ) -> AsyncIterator[FetchedMessage]:
        """Every message after ``last_uid`` in UID order, fetched ``batch_size`` at a time.

        Raises:
            ImapError: connection, timeout or protocol failure.
        """
        uids = await self.uids_after(last_uid)
        for start in range(0, len(uids), max(1, batch_size)):
            for message in await self.fetch(uids[start : start + batch_size]):
                yield message

    async def mark_seen(self, uids: Iterable[int]) -> None:
        """Add the ``\\Seen`` flag to these messages of the selected folder.

        Raises:
            ImapError: connection, timeout or protocol failure.
        """
        wanted = list(uids)
        if not wanted:
            return
        imap = self._session()
        response = await self._call(
            imap.protocol.store(uid_set(wanted), "+FLAGS.SILENT", "(\\Seen)", by_uid=True),
            "UID STORE",
        )
        self._expect_ok(response, "UID STORE")

    async def append(self, raw: bytes, folder: str | None = None, *, seen: bool = False) -> None:
        """Store a message in ``folder`` (default: the settings' folder).

        Raises:
            ImapError: the server refused it, or connection/timeout failure.
        """
        name = folder or self.settings.folder
        imap = self._session()
        response = await self._call(
            imap.protocol.append(
                raw,
                mailbox=encode_mailbox_name(name),
                flags="(\\Seen)" if seen else None,
                timeout=self.settings.timeout,
            ),
            f"APPEND {name}",
            deadline=None,
        )
        self._expect_ok(response, f"APPEND {name}")

    async def noop(self) -> None:
        """A NOOP round trip: checks that the session is alive.

        Raises:
            ImapError: connection, timeout or protocol failure.
        """
        imap = self._session()
        response = await self._call(imap.protocol.simple_command("NOOP"), "NOOP")
        self._expect_ok(response, "NOOP")

    async def idle(self, max_wait: float, wake: asyncio.Event | None = None) -> bool:
        """Wait in IDLE until the server announces new mail, ``wake`` is set, or ``max_wait`` s.

        Returns True when the server announced new mail (EXISTS/RECENT), False otherwise. The
        session is back in the selected state afterwards. ``max_wait`` is capped at 25 minutes.

        Raises:
            ImapProtocolError: the server does not offer IDLE (check ``supports_idle``).
            ImapError: connection or timeout failure.
        """
        imap = self._session()
        if not self.supports_idle:
            raise ImapProtocolError(f"{self.settings.address} does not offer IDLE")
        budget = max(0.0, min(max_wait, IDLE_MAX))
        idle_task = await self._call(imap.idle_start(timeout=budget + 60.0), "IDLE")
        changed = False
        waker: asyncio.Task[bool] | None = None
        try:
            loop = asyncio.get_running_loop()
            end = loop.time() + budget
            if wake is not None:
                waker = asyncio.ensure_future(wake.wait())
            while not changed:
                left = end - loop.time()
                if left <= 0 or (waker is not None and waker.done()):
                    break
                push = asyncio.ensure_future(imap.protocol.idle_queue.get())
                waiters: set[asyncio.Future[Any]] = {push}
                if waker is not None:
                    waiters.add(waker)
                assert self._lost is not None
                waiters.add(self._lost)
                done, _ = await asyncio.wait(
                    waiters, timeout=left, return_when=asyncio.FIRST_COMPLETED
                )
                if push not in done:
                    push.cancel()
                if self._lost in done:
                    self._broken = "connection lost"
                    raise ImapConnectionError(
                        f"connection to {self.settings.address} lost during IDLE"
                    )
                if push in done:
                    lines = push.result()
                    if lines == aioimaplib.STOP_WAIT_SERVER_PUSH:
                        break
                    changed = any(_PUSH_CHANGE.match(bytes(line)) for line in lines)
        finally:
            if waker is not None:
                waker.cancel()
            if self._broken is None and imap.has_pending_idle():
                imap.idle_done()
                try:
                    await self._call(asyncio.shield(idle_task), "IDLE DONE")
                except ImapError:
                    self._broken = self._broken or "IDLE did not end"
                    raise
            # drain pushes that arrived while leaving IDLE: they are about the same change
            while not imap.protocol.idle_queue.empty():
                lines = imap.protocol.idle_queue.get_nowait()
                if lines != aioimaplib.STOP_WAIT_SERVER_PUSH:
                    changed = changed or any(_PUSH_CHANGE.match(bytes(line)) for line in lines)
        return changed

    # -- internals -------------------------------------------------------------------------

    def _session(self) -> aioimaplib.IMAP4:
        if self._imap is None:
            raise ImapConnectionError(f"not connected to {self.settings.address}")
        if self._broken is not None:
            raise ImapConnectionError(
                f"the session with {self.settings.address} is unusable ({self._broken}); "
                "close it and connect again"
            )
        return self._imap

    async def _starttls(self) -> None:
        assert self._imap is not None
        s = self.settings
        proto = self._imap.protocol
        command = aioimaplib.Command("STARTTLS", proto.new_tag(), loop=proto.loop)
        response = await self._call(proto.execute(command), "STARTTLS")
        if response.result != "OK":
            raise ImapConnectionError(f"{s.address} refused STARTTLS: {_last_text(response)}")
        context = s.ssl_context or ssl.create_default_context()
        loop = asyncio.get_running_loop()
        transport = await self._call(
            loop.start_tls(proto.transport, proto, context, server_hostname=s.host),
            "TLS handshake",
        )
        if transport is None:
            raise ImapConnectionError(f"TLS handshake with {s.address} failed")
        proto.transport = transport
        self._tls = True
        # capabilities announced before TLS are void (RFC 3501 6.2.1)
        await self._call(proto.capability(), "CAPABILITY")

    async def _login(self) -> None:
        assert self._imap is not None
        s = self.settings
        if "LOGINDISABLED" in self.capabilities:
            raise ImapAuthError(
                f"{s.address} does not accept a password on this connection (LOGINDISABLED); "
                "use TLS"
            )
        quoted = aioimaplib.quoted(s.password)
        with _MASK.masking(s.password, quoted, quoted[1:-1]):
            try:
                response = await self._call(self._imap.protocol.login(s.user, s.password), "LOGIN")
            except ValueError:
                raise ImapAuthError(
                    f"the user name or password for {s.address} holds a line break or NUL"
                ) from None
        if response.result != "OK":
            raise ImapAuthError(
                f"login as {s.user!r} refused by {s.address}: {_last_text(response)}"
            )

    def _expect_ok(self, response: Any, what: str) -> None:
        if response.result != "OK":
            raise ImapProtocolError(
                f"{what} refused by {self.settings.address}: {_last_text(response)}"
            )

    async def _call(
        self, operation: Awaitable[T], what: str, *, deadline: float | bool | None = True
    ) -> T:
        """Await one server operation, bounded by the timeout and by the connection's life.

        ``deadline=None`` leaves the bound to aioimaplib's inactivity timer (fetch/append of a
        large message may take longer than one timeout as long as data keeps flowing).
        """
        s = self.settings
        task = asyncio.ensure_future(operation)
        waiters: set[asyncio.Future[Any]] = {task}
        if self._lost is not None:
            waiters.add(self._lost)
        limit = s.timeout if deadline is True else None
        try:
            done, _ = await asyncio.wait(
                waiters, timeout=limit, return_when=asyncio.FIRST_COMPLETED
            )
        except asyncio.CancelledError:
            task.cancel()
            self._broken = self._broken or "cancelled in the middle of a command"
            raise
        if task not in done:
            task.cancel()
            if self._lost is not None and self._lost in done:
                self._broken = "connection lost"
                raise ImapConnectionError(f"{what}: connection to {s.address} lost")
            self._broken = "timeout"
            raise ImapTimeout(f"{what}: no answer from {s.address} within {s.timeout:g} s")
        try:
            return task.result()
        except (TimeoutError, aioimaplib.CommandTimeout):
            self._broken = "timeout"
            raise ImapTimeout(
                f"{what}: no answer from {s.address} within {s.timeout:g} s"
            ) from None
        except ssl.SSLError as exc:
            self._broken = "TLS failure"
            raise ImapConnectionError(
                f"{what}: TLS with {s.address} failed: {self._mask(exc.reason or str(exc))}"
            ) from None
        except OSError as exc:
            self._broken = "connection failure"
            reason = exc.strerror or type(exc).__name__
            raise ImapConnectionError(
                f"{what}: cannot talk to {s.address}: {self._mask(reason)}"
            ) from None
        except aioimaplib.AioImapException as exc:
            self._broken = "protocol failure"
            raise ImapProtocolError(
                f"{what}: unexpected answer from {s.address}: {self._mask(str(exc))}"
            ) from None

    def _mask(self, text: str) -> str:
        password = self.settings.password
        if password:
            text = text.replace(aioimaplib.quoted(password), "***").replace(password, "***")
        return text

    def _connection_lost(self, exc: Exception | None) -> None:
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)

    async def _drop(self) -> None:
        imap, self._imap = self._imap, None
        self._selected = None
        self._tls = False
        if imap is None:
            return
        for task in list(imap.tasks) + list(imap.protocol.tasks):
            task.cancel()
        transport = imap.protocol.transport
        if transport is not None:
            transport.close()
        client_task = getattr(imap, "_client_task", None)
        if client_task is not None and not client_task.done():
            client_task.cancel()
            try:
                await client_task
            except (asyncio.CancelledError, OSError):
                pass
        # let the transport finish closing so no socket outlives the mailbox
        await asyncio.sleep(0)


def _last_text(response: Any) -> str:
    for line in reversed(response.lines):
        if isinstance(line, bytes) and line.strip():
            return line.decode("utf-8", "replace").strip()[:300]
    return response.result


def _parse_fetch(lines: Sequence[Any]) -> Iterator[FetchedMessage]:
    """FETCH responses as aioimaplib hands them over: a ``n FETCH (... BODY[] {size}`` line, the
    literal as a bytearray, then the closing line (which may carry the UID instead)."""
    uid: int | None = None
    body: bytes | None = None
    for line in lines:
        if isinstance(line, bytearray):
            body = bytes(line)
            continue
        if _FETCH_START.match(line):
            if uid is not None and body is not None:
                yield FetchedMessage(uid, body)
            match = _FETCH_UID.search(line)
            uid = int(match.group(1)) if match else None
            body = None
            continue
        if uid is None:
            match = _FETCH_UID.search(line)
            if match and body is not None:
                uid = int(match.group(1))
    if uid is not None and body is not None:
        yield FetchedMessage(uid, body)


__all__ = [
    "DEFAULT_TIMEOUT",
    "FetchedMessage",
    "FolderStatus",
    "ImapError",
    "ImapMailbox",
    "ImapSettings",
]
