"""The peers and processes of the fault suite: real sockets, real subprocesses, real faults.

* ``Sink`` — an aiosmtpd server on a fixed loopback port, in the test's event loop, that counts
  every accepted message by its ``X-Genro-Mail-ID`` (the client's message id). ``down()`` closes
  the listening socket *and* every open connection, so the relay really sees the server go away;
  ``up()`` listens again on the same port.
* ``ClientApp`` — the client application: a real HTTP server (stdlib, its own thread) that
  receives delivery reports, answers 200 and remembers, per ``event_id``, every time it was
  posted and when it was first acknowledged. ``down()``/``up()`` close and re-open its port.
* ``Proc`` — ``mail-proxy serve`` or ``mail-proxy worker`` as a subprocess of this test, its log
  (stderr) in a file, so a test can SIGKILL it, start it again and count the log lines of a
  time window.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.smtp import SMTP

from mailproxy_core.testing.live import free_port

BIN = Path(sys.executable).parent / "mail-proxy"
TOKEN = "faults-admin-token"
_MAIL_ID = re.compile(rb"^X-Genro-Mail-ID: *(\S+)", re.MULTILINE | re.IGNORECASE)


async def until(condition: Any, within: float, what: str, step: float = 0.1) -> float:
    """Wait until ``await condition()`` (or ``condition()``) is true; return the seconds it took."""
    start = time.monotonic()
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return time.monotonic() - start
        assert time.monotonic() - start < within, f"{what}: not within {within:g} s"
        await asyncio.sleep(step)


# --- the SMTP server ---------------------------------------------------------------------------


class Sink:
    """aiosmtpd on 127.0.0.1:``port``, counting accepted messages by client message id."""

    def __init__(self, data_delay: float = 0.0) -> None:
        self.port = free_port()
        self.data_delay = data_delay
        self.delivered: Counter[str] = Counter()
        self.open = 0
        self._server: asyncio.Server | None = None
        self._sessions: set[SMTP] = set()

    async def up(self) -> Sink:
        loop = asyncio.get_running_loop()

        def factory() -> SMTP:
            protocol = _TrackedSMTP(self, _Handler(self), hostname="sink.test")
            return protocol

        self._server = await loop.create_server(factory, "127.0.0.1", self.port, reuse_address=True)
        return self

    async def down(self) -> None:
        """Stop listening and drop every open connection (the server went away)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for session in list(self._sessions):
            if session.transport is not None:
                session.transport.abort()
        if server is not None:
            await server.wait_closed()

    @property
    def duplicates(self) -> int:
        return sum(count - 1 for count in self.delivered.values())


class _TrackedSMTP(SMTP):
    def __init__(self, sink: Sink, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sink = sink

    def connection_made(self, transport: Any) -> None:
        self._sink._sessions.add(self)
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._sink._sessions.discard(self)
        super().connection_lost(exc)


class _Handler:
    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        sink = self.sink
        sink.open += 1
        try:
            if sink.data_delay:
                await asyncio.sleep(sink.data_delay)
            found = _MAIL_ID.search(envelope.original_content or b"")
            sink.delivered[found.group(1).decode() if found else "?"] += 1
        finally:
            sink.open -= 1
        return "250 2.0.0 Ok: queued"


# --- the client application ----------------------------------------------------------------------


@dataclass
class ClientApp:
    """The tenant's client application: receives delivery reports over HTTP, answers 200."""

    port: int = field(default_factory=free_port)
    posts: dict[str, list[float]] = field(default_factory=dict)
    """event_id -> the times it was posted."""
    acked: dict[str, float] = field(default_factory=dict)
    """event_id -> when the first 200 for it was answered."""
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> ClientApp:
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                now = time.time()
                report = body.get("delivery_report") or []
                with app._lock:
                    app.requests += 1
                    for entry in report:
                        app.posts.setdefault(entry["event_id"], []).append(now)
                        app.entries[entry["event_id"]] = entry
                answer = json.dumps({"ok": True, "queued": 0}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
                self.wfile.flush()
                with app._lock:  # acknowledged once the answer is on its way
                    for entry in report:
                        app.acked.setdefault(entry["event_id"], now)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def down(self) -> None:
        """Stop answering: the port refuses connections."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def reposted_after_ack(
        self, excused: frozenset[str] | set[str] = frozenset()
    ) -> dict[str, int]:
        """event_id -> times it was posted again after its acknowledgement (``excused`` left out:
        acknowledgements a SIGKILL kept from being recorded, which the contract allows again)."""
        with self._lock:
            return {
                event_id: again
                for event_id, times in self.posts.items()
                if event_id not in excused
                and (again := sum(1 for t in times if t > self.acked.get(event_id, float("inf"))))
            }


# --- mail-proxy processes ------------------------------------------------------------------------


def base_env(db: str, home: Path, **values: str) -> dict[str, str]:
    """The environment of a mail-proxy process: this one's without MAILPROXY_*/GMP_*, plus the
    database, the admin token, plain-text INFO logs without access lines, a private
    ``MAILPROXY_HOME``, and ``values``."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("MAILPROXY_", "GMP_"))}
    return {
        **keep,
        "MAILPROXY_DB": db,
        "MAILPROXY_API_TOKEN": TOKEN,
        "MAILPROXY_LOG_LEVEL": "INFO",
        "MAILPROXY_ACCESS_LOG": "0",
        "MAILPROXY_HOME": str(home),
        **values,
    }


class Proc:
    """One ``mail-proxy serve`` or ``worker`` subprocess; its stderr goes to ``log_path``."""

    def __init__(self, command: str, env: dict[str, str], log_path: Path) -> None:
        self.command = command
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.port = int(env["MAILPROXY_PORT"]) if "MAILPROXY_PORT" in env else None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self, within: float = 60.0) -> Proc:
        self.process = await asyncio.to_thread(self._spawn)
        if self.command == "serve":
            await until(self._healthy, within, f"{self.command} answering /health")
        return self

    def _spawn(self) -> subprocess.Popen[bytes]:
        with open(self.log_path, "ab") as log:
            return subprocess.Popen([str(BIN), self.command], env=self.env, stdout=log, stderr=log)

    async def _healthy(self) -> bool:
        assert self.process is not None
        assert self.process.poll() is None, f"{self.command} exited: {self.log_tail()}"
        try:
            async with httpx.AsyncClient(timeout=1.0) as client:
                return (await client.get(f"{self.url}/health")).status_code == 200
        except httpx.TransportError:
            return False

    def kill(self) -> None:
        """SIGKILL: no drain, no lease released, nothing flushed."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> int:
        """SIGTERM and wait for the graceful exit; returns the exit status."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_lines(self) -> list[str]:
        if not self.log_path.exists():
            return []
        return self.log_path.read_text(errors="replace").splitlines()

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_lines()[-lines:])


class Api:
    """The admin's HTTP client for one serve process."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = httpx.AsyncClient(
            base_url=url, headers={"X-API-Token": TOKEN}, timeout=httpx.Timeout(15.0)
        )

    async def post(self, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        return await self.client.post(path, json=body, **kwargs)

    async def ok(self, path: str, body: Any) -> Any:
        response = await self.post(path, body)
        assert response.status_code == 200, f"{path}: {response.status_code} {response.text}"
        return response.json()

    async def setup_tenant(self, app: ClientApp, sink: Sink, tenant_id: str = "acme") -> None:
        """A tenant reporting to ``app`` with one SMTP account on ``sink``."""
        await self.ok(
            "/tenants/add",
            {
                "id": tenant_id,
                "client_base_url": app.url,
                "client_auth": {"method": "none"},
            },
        )
        await self.ok(
            "/accounts/add",
            {
                "id": "smtp",
                "tenant_id": tenant_id,
                "host": "127.0.0.1",
                "port": sink.port,
                "use_tls": False,
            },
        )

    async def enqueue(self, ids: list[str], tenant_id: str = "acme") -> None:
        for start in range(0, len(ids), 500):
            chunk = [message(mid, tenant_id) for mid in ids[start : start + 500]]
            answer = await self.ok("/messages/add_batch", {"messages": chunk})
            assert answer["queued"] == len(chunk), answer

    async def aclose(self) -> None:
        await self.client.aclose()


def message(mid: str, tenant_id: str = "acme") -> dict[str, Any]:
    return {
        "id": mid,
        "tenant_id": tenant_id,
        "account_id": "smtp",
        "from": "shop@acme.example.com",
        "to": f"{mid}@example.com",
        "subject": f"Order {mid}",
        "body": "Thanks for your order.",
    }


class Store:
    """Read-only looks at the service's database (what the API does not show: leases, events)."""

    def __init__(self, db: str) -> None:
        from mailproxy_core.db.engine import Database

        self.db = Database.from_setting(db, pool_max_size=2)

    async def __aenter__(self) -> Store:
        await self.db.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.db.disconnect()

    async def count(self, where: str, table: str = "messages") -> int:
        return int(await self.db.fetch_val(f"SELECT count(*) FROM {table} WHERE {where}"))

    async def event_ids(self, where: str = "1 = 1") -> set[str]:
        rows = await self.db.fetch_all(f"SELECT event_uuid FROM message_events WHERE {where}")
        return {str(row["event_uuid"]) for row in rows}

    async def statuses(self) -> Counter[str]:
        rows = await self.db.fetch_all("SELECT status, count(*) AS n FROM messages GROUP BY status")
        return Counter({str(row["status"]): int(row["n"]) for row in rows})
