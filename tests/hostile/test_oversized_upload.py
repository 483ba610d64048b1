"""A client still uploading an oversized body reads the 413, not a connection reset."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from mailproxy_core import Settings
from mailproxy_core.testing.live import live_service
from mailproxy_core.testing.plugin import ADMIN_TOKEN

LIMIT = 256 * 1024


async def upload(url: str, size: int, declared: int) -> bytes:
    """POST ``size`` bytes declared as ``declared`` in small, paced pieces; the raw answer."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        (
            "POST /messages/add_batch HTTP/1.1\r\n"
            f"Host: {host}\r\nX-API-Token: {ADMIN_TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {declared}\r\n\r\n"
        ).encode()
    )
    sent = 0
    try:
        while sent < size:
            piece = min(32 * 1024, size - sent)
            writer.write(b" " * piece)
            await writer.drain()
            sent += piece
            await asyncio.sleep(0.005)  # a client on a real network: the answer comes first
        return await asyncio.wait_for(reader.read(), timeout=30)
    finally:
        writer.close()


def answer_of(raw: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


@pytest.mark.requires_plugins("auth_token")
async def test_a_body_over_the_limit_is_read_and_answered_413(tmp_path: Path) -> None:
    settings = Settings.from_values(
        db=str(tmp_path / "mail.db"), api_token=ADMIN_TOKEN, max_request_bytes=LIMIT
    )
    with live_service(settings) as live:
        size = LIMIT * 3 // 2  # within what is read and dropped (the limit again)
        status, body = answer_of(await upload(live.url, size, size))
        assert status == 413
        assert body["code"] == "payload_too_large"
        assert "MAILPROXY_MAX_REQUEST_BYTES" in str(body["detail"])


@pytest.mark.requires_plugins("auth_token")
async def test_a_body_declared_far_over_the_limit_is_not_read(tmp_path: Path) -> None:
    settings = Settings.from_values(
        db=str(tmp_path / "mail.db"), api_token=ADMIN_TOKEN, max_request_bytes=LIMIT
    )
    with live_service(settings) as live:
        # declared 100 times the limit, nothing of it sent: answered at once, never waited for
        raw = await asyncio.wait_for(upload(live.url, 0, LIMIT * 100), timeout=10)
        status, body = answer_of(raw)
        assert status == 413 and body["code"] == "payload_too_large"
