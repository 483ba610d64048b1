"""Hostile bodies against the real ``mail-proxy serve`` process: refused, never a 500, and the
service stays healthy (it still answers, accepts and delivers ordinary mail afterwards)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.faults.harness import Api, ClientApp, Proc, Sink, base_env, free_port, message, until

pytestmark = pytest.mark.requires_plugins("smtp", "auth_token", "reporter_http")

DEPTH = 100_000
MAX_REQUEST_BYTES = 4 * 1024 * 1024
"""Lowered from 32 MiB so the oversized body stays small; 100,000 recipients (2.4 MB) fit."""


def nested(depth: int = DEPTH) -> str:
    return '{"a":[' * (depth // 2) + "1" + "]}" * (depth // 2)


async def test_hostile_bodies_against_the_process(
    tmp_path: Path, sink: Sink, client_app: ClientApp
):
    env = base_env(
        str(tmp_path / "mail.db"),
        tmp_path,
        MAILPROXY_PORT=str(free_port()),
        MAILPROXY_MAX_REQUEST_BYTES=str(MAX_REQUEST_BYTES),
    )
    serve = await Proc("serve", env, tmp_path / "serve.log").start()
    api = Api(serve.url)
    answers: list[tuple[str, int, float]] = []
    try:
        await api.setup_tenant(client_app, sink)

        async def send(what: str, path: str, content: bytes) -> dict:
            started = time.monotonic()
            response = await api.client.post(
                path, content=content, headers={"Content-Type": "application/json"}
            )
            answers.append((what, response.status_code, time.monotonic() - started))
            return {"status": response.status_code, **response.json()}

        head = (
            '{"id":"h1","tenant_id":"acme","account_id":"smtp",'
            '"from":"a@acme.example.com","to":"c@example.com",'
        )
        # over the cap: the server reads and drops the rest, then answers 413 (a body declared
        # more than twice the cap is answered at once, and the client may see a reset instead)
        too_big = b'{"messages":[' + b" " * (MAX_REQUEST_BYTES + 65536) + b"]}"
        answer = await send("over the size cap", "/messages/add_batch", too_big)
        assert answer["status"] == 413 and answer["code"] == "payload_too_large"
        for what, path, text in [
            ("nested top level", "/messages/add", nested()),
            ("nested in a message", "/messages/add",
             head + '"subject":"s","body":' + nested() + "}"),
            ("nested in headers", "/messages/add",
             head + '"subject":"s","body":"b","headers":{"X-A":' + nested() + "}}"),
            ("nested in a batch", "/messages/add_batch", '{"messages":[' + nested() + "]}"),
        ]:  # fmt: skip
            answer = await send(what, path, text.encode())
            assert answer["status"] in (400, 422) and answer["code"] == "json_too_deep", answer
        huge = ", ".join(f"r{n}@example.com" for n in range(100_000))
        answer = await send(
            "100,000 recipients",
            "/messages/add",
            ('{"id":"h2","tenant_id":"acme","account_id":"smtp","from":"a@acme.example.com",'
             f'"to":"{huge}","subject":"s","body":"b"}}').encode(),
        )  # fmt: skip
        assert answer["status"] in (400, 422) and answer["code"] == "message_rejected", answer
        nul = head + '"subject":"s","body":"a\\u0000b"}'
        answer = await send("NUL in the body", "/messages/add", nul.encode())
        assert answer["status"] in (400, 422), answer

        # healthy afterwards: it answers, accepts and delivers
        assert (await api.client.get("/health")).status_code == 200
        assert (await api.client.get("/health/ready")).status_code == 200
        await api.ok("/messages/add", message("after-hostile"))
        await until(lambda: "after-hostile" in sink.delivered, 30, "ordinary mail delivered")
        assert serve.alive()
    finally:
        await api.aclose()
        serve.stop()
    assert all(status < 500 for _what, status, _seconds in answers), answers
    log = serve.log_lines()
    assert not [line for line in log if "Traceback" in line or " ERROR " in line], "\n".join(log)
    slowest = max(seconds for _what, _status, seconds in answers)
    print(f"\nFIGURES hostile: {[(w, s) for w, s, _ in answers]}, slowest answer {slowest:.2f} s")
