"""The ``file`` transport: writes each message as an ``.eml`` file (the development sink).

The file of a sent message is ``<time in ns>-<account pk>-<its Message-ID without <>>.eml``;
``kept_message`` finds it again by account and Message-ID (the newest file when the message was
sent more than once), so the dashboard can show the raw message. The account in the name keeps
one tenant's message from ever being matched with another tenant's file of the same Message-ID
(accounts of different tenants may share a directory).

Files go under the ``root`` directory of the ``[plugins.file]`` settings (``MAILPROXY_FILE__ROOT``,
default ``./mail-out``). An account may name a sub-directory in ``options.directory``; it must stay
inside the root, so a tenant cannot make the service write anywhere else on the disk.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from ..errors import PermanentSendError
from ..message_ids import message_id_of
from ..models import Account, Envelope, Message, SendResult
from ..plugins.markers import hookimpl
from ..specs import SettingsSpec, TransportSpec

if TYPE_CHECKING:
    from ..kernel import MailProxy

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class FileTransportSettings(BaseModel):
    """Settings of the ``file`` transport."""

    root: Path = Path("mail-out")


def _safe_name(text: str) -> str:
    return _UNSAFE.sub("_", text).strip("._")[:80] or "message"


class FileTransport:
    """Writes ``<root>/<options.directory>/<time>-<message id>.eml`` atomically."""

    def __init__(self, mp: MailProxy) -> None:
        settings = mp.plugin_settings("file")
        assert isinstance(settings, FileTransportSettings)
        self.root = settings.root.resolve()

    def check_options(self, options: Mapping[str, Any]) -> list[str]:
        """``directory`` must be a relative path that stays inside the root (``accounts/add``)."""
        sub = options.get("directory")
        if sub is None:
            return []
        if not isinstance(sub, str):
            return ["directory: must be a string (a path relative to MAILPROXY_FILE__ROOT)"]
        if self._resolve(sub) is None:
            return [
                f"directory: {sub!r} is outside the file transport's root; use a relative path "
                "inside MAILPROXY_FILE__ROOT"
            ]
        return []

    def _resolve(self, sub: str) -> Path | None:
        target = (self.root / sub).resolve() if sub else self.root
        if target != self.root and self.root not in target.parents:
            return None
        return target

    def directory_for(self, account: Account) -> Path:
        """The directory of an account's files; refuses paths leaving the root."""
        sub = str(account.options.get("directory") or "")
        target = self._resolve(sub)
        if target is None:  # saved before accounts/add checked it, or the root moved
            raise PermanentSendError(
                f"file transport directory {sub!r} of account {account.id!r} is outside the "
                f"configured root; use a relative path inside MAILPROXY_FILE__ROOT"
            )
        return target

    async def send(self, account: Account, envelope: Envelope, mime_bytes: bytes) -> SendResult:
        directory = self.directory_for(account)
        stem = f"{time.time_ns()}-{_file_id(account, envelope.message_id)}"
        await asyncio.to_thread(_write_atomically, directory, stem, mime_bytes)
        return SendResult(accepted=envelope.recipients, response=f"250 written {stem}.eml")

    async def kept_message(self, account: Account, message: Message) -> bytes | None:
        """The ``.eml`` file written for ``message`` (the newest one), or ``None`` when there
        is none (never sent through this transport, or removed from the disk)."""
        try:
            directory = self.directory_for(account)
        except PermanentSendError:
            return None
        return await asyncio.to_thread(
            _newest_file, directory, _file_id(account, message_id_of(message))
        )


def _file_id(account: Account, message_id: str) -> str:
    """What follows the time in a file name: the account's pk and the message's Message-ID."""
    return f"{_safe_name(str(account.pk))}-{_safe_name(message_id.strip().strip('<>'))}"


def _newest_file(directory: Path, file_id: str) -> bytes | None:
    """The newest ``<digits>-<file_id>.eml`` of ``directory`` (exactly that name after the
    time: another account's or message's file never matches)."""
    wanted = f"{file_id}.eml"
    stamped: list[tuple[int, str]] = []
    try:
        for entry in os.scandir(directory):
            stamp, dash, rest = entry.name.partition("-")
            if dash and stamp.isdigit() and rest == wanted:
                stamped.append((int(stamp), entry.name))
    except FileNotFoundError:
        return None
    if not stamped:
        return None
    _stamp, newest = max(stamped)
    try:
        return (directory / newest).read_bytes()
    except FileNotFoundError:
        return None


def _write_atomically(directory: Path, stem: str, data: bytes) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{stem}.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, directory / f"{stem}.eml")


@hookimpl
def mailproxy_register_settings() -> list[SettingsSpec]:
    return [SettingsSpec("file", FileTransportSettings)]


@hookimpl
def mailproxy_register_transports() -> list[TransportSpec]:
    return [TransportSpec("file", FileTransport)]
