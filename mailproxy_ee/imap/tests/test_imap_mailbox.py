"""``ImapMailbox`` against a real Dovecot on loopback: reading, flags, TLS, IDLE, failures."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Iterator

import pytest

from mailproxy_ee_imap import (
    ImapAuthError,
    ImapConnectionError,
    ImapFolderError,
    ImapMailbox,
    ImapProtocolError,
    ImapSettings,
    ImapTimeout,
)
from mailproxy_ee_imap.testing import DovecotServer, TestMailbox, free_port


def _mail(subject: str, body: str = "hello") -> bytes:
    return (
        f"From: a@example.test\r\nTo: b@example.test\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject}@example.test>\r\n\r\n{body}\r\n"
    ).encode()


def _flags(server: DovecotServer, folder: str, uid: int) -> bytes:
    with server.imap() as client:
        client.select(folder, readonly=True)
        status, data = client.uid("FETCH", str(uid), "(FLAGS)")
        assert status == "OK"
        first = data[0]
        assert isinstance(first, bytes)
        return first


async def test_reads_new_messages_in_uid_order_without_marking_them_seen(
    imap_mailbox: TestMailbox,
) -> None:
    imap_mailbox.append([_mail("one"), _mail("two"), _mail("three")])
    async with ImapMailbox(imap_mailbox.settings) as box:
        status = await box.select()
        assert status.exists == 3
        assert status.uidvalidity > 0
        assert status.uidnext == 4
        assert await box.uids_after(0) == [1, 2, 3]
        assert await box.uids_after(2) == [3]
        assert await box.uids_after(3) == []  # "4:*" still matches UID 3 on the server
        fetched = [m async for m in box.fetch_new(1, batch_size=1)]
    assert [m.uid for m in fetched] == [2, 3]
    assert fetched[0].raw == _mail("two")
    assert b"\\Seen" not in _flags(imap_mailbox.server, imap_mailbox.folder, 2)


async def test_mark_seen_flags_only_the_given_messages(imap_mailbox: TestMailbox) -> None:
    imap_mailbox.append([_mail("a"), _mail("b"), _mail("c")])
    async with ImapMailbox(imap_mailbox.settings) as box:
        await box.select()
        await box.mark_seen([1, 3])
        await box.mark_seen([])
    server, folder = imap_mailbox.server, imap_mailbox.folder
    assert b"\\Seen" in _flags(server, folder, 1)
    assert b"\\Seen" not in _flags(server, folder, 2)
    assert b"\\Seen" in _flags(server, folder, 3)


async def test_large_and_8bit_messages_come_back_byte_for_byte(imap_mailbox: TestMailbox) -> None:
    body = ("Grüße — ünïcödé ✓ " * 40 + "\r\n") * 1500  # about 1.4 MB, 8bit
    raw = b"Subject: big\r\nContent-Type: text/plain; charset=utf-8\r\n" + (
        b"Content-Transfer-Encoding: 8bit\r\n\r\n" + body.encode()
    )
    imap_mailbox.append(raw)
    async with ImapMailbox(imap_mailbox.settings) as box:
        await box.select()
        [message] = await box.fetch([1])
    assert message.raw == raw


async def test_fetch_leaves_out_uids_that_do_not_exist(imap_mailbox: TestMailbox) -> None:
    imap_mailbox.append(_mail("only"))
    async with ImapMailbox(imap_mailbox.settings) as box:
        await box.select()
        assert [m.uid for m in await box.fetch([1, 5, 6])] == [1]
        assert await box.fetch([]) == []


async def test_append_and_create_folder_with_a_non_ascii_name(dovecot: DovecotServer) -> None:
    folder = "Rückläufer " + str(time.monotonic_ns())
    async with ImapMailbox(dovecot.settings(folder=folder)) as box:
        await box.create_folder(folder)
        await box.create_folder(folder)  # already there: fine
        await box.append(_mail("x"))
        await box.append(_mail("y"), seen=True)
        status = await box.select()
        assert status.folder == folder
        assert status.exists == 2


async def test_uidvalidity_is_stable_across_sessions(imap_mailbox: TestMailbox) -> None:
    async with ImapMailbox(imap_mailbox.settings) as box:
        first = await box.select()
    async with ImapMailbox(imap_mailbox.settings) as box:
        second = await box.select()
    assert first.uidvalidity == second.uidvalidity


async def test_plain_server_without_starttls_stays_plain(dovecot: DovecotServer) -> None:
    async with ImapMailbox(dovecot.settings()) as box:
        assert "STARTTLS" not in box.capabilities
        assert not box.tls
        await box.noop()


async def test_starttls_is_used_when_offered(dovecot_tls: DovecotServer) -> None:
    async with ImapMailbox(dovecot_tls.settings()) as box:
        assert box.tls
        assert "STARTTLS" not in box.capabilities  # capabilities were read again after TLS
        assert (await box.select()).uidvalidity > 0


async def test_implicit_tls(dovecot_tls: DovecotServer) -> None:
    async with ImapMailbox(dovecot_tls.settings(implicit_tls=True)) as box:
        assert box.tls
        assert (await box.select()).uidvalidity > 0


async def test_an_untrusted_certificate_is_refused(dovecot_tls: DovecotServer) -> None:
    trusted = dovecot_tls.settings(implicit_tls=True)
    untrusted = ImapSettings(
        host=trusted.host,
        port=trusted.port,
        ssl=True,
        user="mailbox",
        password=trusted.password,
        timeout=5,
    )
    with pytest.raises(ImapConnectionError, match="TLS") as caught:
        await ImapMailbox(untrusted).connect()
    assert trusted.password not in str(caught.value)


async def test_wrong_password_is_an_auth_error_without_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = 'wr"ong\\pass-123'
    with DovecotServer({"mailbox": "right"}) as server:
        settings = server.settings(password=secret)
        caplog.set_level(logging.DEBUG)
        box = ImapMailbox(settings)
        with pytest.raises(ImapAuthError) as caught:
            await box.connect()
        assert not box.connected
    text = str(caught.value)
    assert "mailbox" in text and server.host in text
    for form in (secret, 'wr\\"ong\\\\pass-123', "ong\\pass"):
        assert form not in text
        assert form not in caplog.text
    assert "LOGIN" in caplog.text  # the debug log was on, and masked


def test_settings_repr_never_shows_the_password() -> None:
    settings = ImapSettings(host="imap.example.test", user="u", password="s3cret-value")
    assert "s3cret-value" not in repr(settings)


async def test_unknown_folder_is_a_folder_error(dovecot: DovecotServer) -> None:
    async with ImapMailbox(dovecot.settings(folder="NoSuchFolder")) as box:
        with pytest.raises(ImapFolderError, match="NoSuchFolder"):
            await box.select()
        await box.noop()  # the session stays usable


async def test_refused_connection_is_a_connection_error() -> None:
    settings = ImapSettings(host="127.0.0.1", port=free_port(), ssl=False, timeout=5)
    started = time.monotonic()
    with pytest.raises(ImapConnectionError, match=f"127.0.0.1:{settings.port}"):
        await ImapMailbox(settings).connect()
    assert time.monotonic() - started < 5


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server that accepts connections and never says anything."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    yield listener.getsockname()[1]
    listener.close()


async def test_a_server_that_never_greets_times_out(silent_server: int) -> None:
    settings = ImapSettings(host="127.0.0.1", port=silent_server, ssl=False, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(ImapTimeout, match=r"0\.5 s"):
        await ImapMailbox(settings).connect()
    assert time.monotonic() - started < 3


async def test_idle_returns_true_on_new_mail(imap_mailbox: TestMailbox) -> None:
    async with ImapMailbox(imap_mailbox.settings) as box:
        await box.select()
        assert box.supports_idle
        waiting = asyncio.create_task(box.idle(20))
        await asyncio.sleep(0.3)
        await asyncio.to_thread(imap_mailbox.append, _mail("pushed"))
        started = time.monotonic()
        assert await waiting is True
        assert time.monotonic() - started < 5
        assert await box.uids_after(0) == [1]  # the session is usable after IDLE


async def test_idle_times_out_with_false_and_wakes_on_the_event(
    imap_mailbox: TestMailbox,
) -> None:
    async with ImapMailbox(imap_mailbox.settings) as box:
        await box.select()
        assert await box.idle(0.3) is False
        wake = asyncio.Event()
        waiting = asyncio.create_task(box.idle(30, wake=wake))
        await asyncio.sleep(0.2)
        wake.set()
        started = time.monotonic()
        assert await waiting is False
        assert time.monotonic() - started < 3
        await box.noop()


async def test_idle_without_server_support_is_refused(imap_mailbox: TestMailbox) -> None:
    async with ImapMailbox(imap_mailbox.settings) as box:
        await box.select()
        box._imap.protocol.capabilities.discard("IDLE")  # type: ignore[union-attr]
        with pytest.raises(ImapProtocolError, match="IDLE"):
            await box.idle(1)


async def test_a_server_that_goes_away_is_a_connection_error_not_a_hang() -> None:
    server = DovecotServer({"mailbox": "pw"}).start()
    box = ImapMailbox(server.settings(timeout=10))
    try:
        await box.connect()
        await box.select()
        waiting = asyncio.create_task(box.idle(30))
        await asyncio.sleep(0.3)
        await asyncio.to_thread(server.stop)
        started = time.monotonic()
        with pytest.raises(ImapConnectionError):
            await waiting
        assert time.monotonic() - started < 8
        assert not box.connected
        with pytest.raises(ImapConnectionError, match="connect again"):
            await box.noop()
    finally:
        await box.close()
        server.stop()


async def test_close_is_idempotent_and_connect_after_close_works(
    imap_mailbox: TestMailbox,
) -> None:
    box = ImapMailbox(imap_mailbox.settings)
    await box.close()
    await box.connect()
    with pytest.raises(RuntimeError):
        await box.connect()
    await box.close()
    await box.close()
    await box.connect()
    assert box.connected
    await box.close()
    assert not box.connected
