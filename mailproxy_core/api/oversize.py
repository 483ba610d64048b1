"""A body over the size limit is read and thrown away before the 413 goes out.

The client of an oversized request is usually still uploading when the answer is ready. If the
server then closes the connection with the rest of the body unread, the client's TCP stack gets a
reset and most HTTP clients report "connection reset" instead of the 413 and its explanation.
So, like the lingering close of other web servers, :class:`DrainOversizedBodies` reads (and
drops, never keeps) what the client sends, up to ``drain_bytes`` and ``drain_seconds``, and only
then lets the application answer 413 from the declared ``Content-Length`` (Quart's
``MAX_CONTENT_LENGTH``). A body declared larger than the limit plus ``drain_bytes`` is not read:
the answer goes out at once and the connection is closed, so a client cannot make the service
read an unbounded amount.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[..., Awaitable[None]]

DRAIN_SECONDS = 10.0
"""Longest time spent reading an oversized body before answering anyway."""


def declared_length(scope: Scope) -> int | None:
    """The request's ``Content-Length`` (``None`` when absent or not a number)."""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class DrainOversizedBodies:
    """ASGI middleware: see the module documentation."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: int,
        drain_bytes: int,
        drain_seconds: float = DRAIN_SECONDS,
    ) -> None:
        self.app = app
        self.limit = limit
        self.drain_bytes = drain_bytes
        self.drain_seconds = drain_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        length = declared_length(scope) if scope["type"] == "http" else None
        if length is None or length <= self.limit or length > self.limit + self.drain_bytes:
            await self.app(scope, receive, send)
            return
        await self._drain(receive)
        await self.app(scope, _after_drain(receive), send)

    async def _drain(self, receive: Receive) -> None:
        """Read and drop the body until its end, the time limit or a disconnect."""
        read = 0
        try:
            async with asyncio.timeout(self.drain_seconds):
                while read <= self.limit + self.drain_bytes:
                    message = await receive()
                    if message["type"] != "http.request":
                        return  # the client went away
                    read += len(message.get("body", b""))
                    if not message.get("more_body", False):
                        return
        except TimeoutError:
            return


def _after_drain(receive: Receive) -> Receive:
    """A ``receive`` whose body is empty (already read), then the connection's own events."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": b"", "more_body": False}
        return await receive()

    return replay
