"""Real peers for the attachment fetchers: an HTTP file server on loopback, an SMTP sink.

``file_server`` is a threaded stdlib HTTP server: ``route(path, *replies)`` scripts its answers
(one reply per request, the last one repeats), every request is recorded in ``requests`` and the
highest number of requests served at once in ``peak``. ``mail``
(``mailproxy_core.testing.mail.Mail``) enqueues messages over the API for tenant ``acme`` /
account ``main`` (on the scripted SMTP sink ``server``), delivers them with ``dispatch_now`` and
reads back statuses, histories and the MIME messages received. Helpers are fixtures because test
modules are imported with ``--import-mode=importlib``.
"""

from __future__ import annotations

import importlib.util
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mailproxy_core import MailProxy, Settings
from mailproxy_core.testing.client import ApiClient
from mailproxy_core.testing.mail import SMTP_TEST_SECTION, Mail
from mailproxy_core.testing.plugin import ADMIN_TOKEN
from mailproxy_core.testing.smtp import ScriptedServer

LOOPBACK_TEST_NETWORK = "127.0.0.1/32"
"""Where the test file server listens; fetches may reach it only when allowed explicitly."""


@dataclass(frozen=True)
class Reply:
    """One scripted HTTP answer; ``delay`` seconds pass before it is sent."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class Seen:
    """A request the file server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that give up (size cap, timeout) reset connections on purpose


class FileServer:
    """A threaded HTTP server on 127.0.0.1 answering scripted replies per path."""

    def __init__(self) -> None:
        self.requests: list[Seen] = []
        self.peak = 0
        self._active = 0
        self._lock = threading.Lock()
        self._routes: dict[str, list[Reply]] = {}
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                owner._serve(self)

            def do_POST(self) -> None:
                owner._serve(self)

        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def route(self, path: str, *replies: Reply) -> None:
        """Answer ``path`` with ``replies`` in turn; the last one is repeated."""
        with self._lock:
            self._routes[path] = list(replies)

    def file(self, path: str, content: bytes, **headers: str) -> str:
        """Serve ``content`` at ``path`` with 200; returns its URL."""
        self.route(path, Reply(body=content, headers=headers))
        return self.url(path)

    def seen(self, path: str) -> list[Seen]:
        return [request for request in self.requests if request.path == path]

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        with self._lock:
            self.requests.append(
                Seen(handler.command, handler.path, dict(handler.headers.items()), body)
            )
            replies = self._routes.get(handler.path)
            reply = (replies.pop(0) if len(replies) > 1 else replies[0]) if replies else None
            self._active += 1
            self.peak = max(self.peak, self._active)
        try:
            reply = reply or Reply(404, b"not found")
            if reply.delay:
                time.sleep(reply.delay)
            handler.send_response(reply.status)
            for name, value in reply.headers.items():
                handler.send_header(name, value)
            if reply.headers.get("Transfer-Encoding") == "chunked":  # no declared length
                handler.end_headers()
                for start in range(0, len(reply.body), 16384):
                    chunk = reply.body[start : start + 16384]
                    handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                handler.wfile.write(b"0\r\n\r\n")
            else:
                handler.send_header("Content-Length", str(len(reply.body)))
                handler.end_headers()
                handler.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (size cap, timeout): expected in those tests
        finally:
            with self._lock:
                self._active -= 1

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    server = FileServer()
    yield server
    server.close()


@pytest.fixture
def attachment_roots(tmp_path: Path) -> tuple[Path, ...]:
    """``MAILPROXY_ATTACHMENT_ROOTS`` of the test instance (override to change)."""
    root = tmp_path / "files"
    root.mkdir()
    return (root,)


@pytest.fixture
def attachments_settings(tmp_path: Path) -> dict[str, Any]:
    """``[plugins.attachments]`` of the test instance (override to change).

    The test file server listens on loopback, which fetches refuse by default: the tests allow
    it explicitly, as an operator allows an intranet server.
    """
    return {
        "timeout": 2.0,
        "disk_cache_dir": str(tmp_path / "cache"),
        "allowed_networks": [LOOPBACK_TEST_NETWORK],
    }


@pytest.fixture
def mp_settings(
    tmp_path: Path,
    db_url: str,
    attachment_roots: tuple[Path, ...],
    attachments_settings: dict[str, Any],
) -> Settings:
    storage_section: dict[str, Any] = {}
    if importlib.util.find_spec("mailproxy_storage_local") is not None:
        storage_section["storage_local"] = {"allowed_roots": [str(tmp_path)]}
    return Settings.from_values(
        db=db_url,
        api_token=ADMIN_TOKEN,
        test_mode=True,
        max_retries=2,
        retry_delays=(0.001,),
        attachment_roots=attachment_roots,
        plugin_sections={
            **storage_section,
            "attachments": attachments_settings,
            "smtp": SMTP_TEST_SECTION,
        },
    )


@pytest.fixture
async def server(smtp_server: Callable[..., Awaitable[ScriptedServer]]) -> ScriptedServer:
    return await smtp_server()


@pytest.fixture
def tenant_fields(file_server: FileServer) -> dict[str, Any]:
    """Fields of tenant ``acme`` (override to change)."""
    return {"client_base_url": file_server.url("")}


@pytest.fixture
async def mail(
    mp_client: ApiClient,
    mp_kernel: MailProxy,
    server: ScriptedServer,
    tenant_fields: dict[str, Any],
) -> Mail:
    """Tenant ``acme`` with account ``main`` on the SMTP sink, and the ``Mail`` helper."""
    return await Mail.start(mp_client, mp_kernel, server, **tenant_fields)


@pytest.fixture
def reply() -> type[Reply]:
    """The ``Reply`` class, for scripting ``file_server.route``."""
    return Reply
