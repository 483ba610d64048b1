"""The example third-party plugin of docs/plugins.md, against a real HTTP server on loopback."""

from __future__ import annotations

import base64
import importlib.metadata
import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import mailproxy_example_relay as relay
from mailproxy_core import Account, Envelope, PermanentSendError, TransientSendError

INSTALLED = any(
    ep.name == "example_relay" for ep in importlib.metadata.entry_points(group="mailproxy")
)


class RelayServer:
    """Records POSTed JSON and answers with a scripted status."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.status = 200
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                outer.received.append(json.loads(self.rfile.read(length)))
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/relay"


@pytest.fixture
def relay_server() -> Iterator[RelayServer]:
    server = RelayServer()
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


@pytest.fixture(autouse=True)
def _example_plugin(register_plugin):
    # Installed (the tox env "example"): discovered through its entry point. Otherwise register
    # the same module in-process.
    if not INSTALLED:
        register_plugin(relay, name="example_relay")


def test_example_relay_is_installed(tmp_path):
    if os.environ.get("MAILPROXY_EXPECT_EXAMPLE_PLUGIN") != "1":
        pytest.skip("the example plugin is installed only in the tox env 'example'")
    from mailproxy_core import Settings
    from mailproxy_core.kernel import build_kernel

    mp = build_kernel(Settings.from_values(db=str(tmp_path / "mp.db")))
    info = {p.name: p for p in mp.plugins}["example_relay"]
    assert info.status == "loaded" and info.distribution == "mailproxy-example-relay"
    assert mp.registry.transports.plugin_of("http-relay") == "example_relay"


async def test_relay_delivers_the_message(mp_kernel, relay_server):
    account = Account(
        pk="p",
        tenant_id="acme",
        id="relay",
        transport="http-relay",
        options={"url": relay_server.url},
    )
    envelope = Envelope(sender="app@acme.example", recipients=("bob@example.com",))
    result = await mp_kernel.transports["http-relay"].send(
        account, envelope, b"Subject: hi\r\n\r\nbody"
    )
    assert result.accepted == ("bob@example.com",)
    (posted,) = relay_server.received
    assert posted["from"] == "app@acme.example"
    assert base64.b64decode(posted["mime"]) == b"Subject: hi\r\n\r\nbody"


@pytest.mark.parametrize(
    ("status", "error"), [(503, TransientSendError), (422, PermanentSendError)]
)
async def test_relay_failures_are_classified(mp_kernel, relay_server, status, error):
    relay_server.status = status
    account = Account(
        pk="p",
        tenant_id="acme",
        id="relay",
        transport="http-relay",
        options={"url": relay_server.url},
    )
    envelope = Envelope(sender="app@acme.example", recipients=("bob@example.com",))
    with pytest.raises(error, match=str(status)):
        await mp_kernel.transports["http-relay"].send(account, envelope, b"x")


def test_relay_settings_come_from_the_plugin_section(mp_settings):
    from mailproxy_core.kernel import build_kernel

    settings = mp_settings.model_copy(
        update={
            "plugin_sections": {**mp_settings.plugin_sections, "example_relay": {"timeout": 2.5}}
        }
    )
    plugins = {} if INSTALLED else {"example_relay": relay}
    mp = build_kernel(settings, extra_plugins=plugins)
    assert mp.plugin_settings("example_relay").timeout == 2.5
