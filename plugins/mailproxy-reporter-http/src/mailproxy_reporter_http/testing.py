"""A recording client application for tests of delivery reports (standard library only).

``ClientApp`` is a real HTTP server on loopback (``ThreadingHTTPServer`` in a thread of its own,
HTTP/1.1 keep-alive) that records every request -- path, headers, raw body, decoded JSON, time of
arrival -- and answers as the test says:

* ``status`` / ``answer``: the status code and JSON answer of the next requests (default ``200``
  ``{"ok": true, "queued": 0}``); change them at any time, e.g. ``app.status = 500`` for an
  outage and back to ``200`` for the recovery;
* ``hang``: while set, requests get no answer (until ``release()`` or ``stop()``), like a client
  that stopped responding.

Reports answered with a 2xx are the *acknowledged* ones (``acknowledged_entries``); a report
answered otherwise was received but must be sent again. Use it as a context manager or call
``start()``/``stop()``; it runs in its own thread, so a hanging request never blocks the test's
event loop.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Recorded:
    """One request the client application received, and how it answered (``status`` 0: not
    answered, yet or ever)."""

    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float
    status: int = 0
    document: Any = None

    @property
    def entries(self) -> list[dict[str, Any]]:
        """The ``delivery_report`` entries of this request (``[]`` for an idle poll)."""
        if isinstance(self.document, dict):
            return list(self.document.get("delivery_report") or [])
        return []


@dataclass
class ClientApp:
    """A client application on ``127.0.0.1`` that records delivery reports."""

    status: int = 200
    answer: dict[str, Any] = field(default_factory=lambda: {"ok": True, "queued": 0})
    hang: bool = False
    requests: list[Recorded] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _released: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> ClientApp:
        """Listen on a free port of 127.0.0.1."""
        app = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body are written separately: without TCP_NODELAY, Nagle's algorithm
            # and the client's delayed ACK hold every answer back by ~40 ms.
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                app._handle(self, body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening; requests left hanging are released without an answer."""
        self._released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> ClientApp:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL (``client_base_url`` of a tenant reporting here)."""
        assert self._server is not None, "start() the client application first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def release(self) -> None:
        """Stop hanging: requests waiting for an answer get one, new ones are answered."""
        self.hang = False
        self._released.set()

    # -- what arrived --------------------------------------------------------------------------

    def received(self, path: str | None = None) -> list[Recorded]:
        """Every request so far (only those for ``path`` when given), in arrival order."""
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]

    def acknowledged(self, path: str | None = None) -> list[Recorded]:
        """Requests answered with a 2xx, in arrival order."""
        return [r for r in self.received(path) if 200 <= r.status < 300]

    def acknowledged_entries(self, path: str | None = None) -> list[dict[str, Any]]:
        """Every entry of every acknowledged report, in the order they were posted."""
        return [entry for r in self.acknowledged(path) for entry in r.entries]

    # -- answering -----------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        record = Recorded(
            path=handler.path,
            headers={key.lower(): value for key, value in handler.headers.items()},
            body=body,
            received_at=time.time(),
        )
        try:
            record.document = json.loads(body) if body else None
        except ValueError:
            record.document = None
        with self._lock:
            self.requests.append(record)
        if self.hang:
            self._released.clear()
            while self.hang and not self._released.wait(0.05):
                pass
            if self.hang:  # stopped while hanging: no answer at all
                handler.close_connection = True
                return
        status, answer = self.status, json.dumps(self.answer).encode()
        record.status = status
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(answer)))
        handler.end_headers()
        handler.wfile.write(answer)
