"""Secrets are write-only (API.md §2): no answer and no log line ever holds one.

The tests create objects holding known plaintext secrets (client-auth bearer token and basic
password, report signing secret, account password and secret options, storage credentials,
attachment ``auth`` credentials), as the admin and as a tenant key, and also send calls that are
rejected while carrying secrets. Then they call **every GET route** the app serves (as the admin
and as the tenant; a GET route without queries in ``GET_QUERIES`` fails the test) and scan every
answer, the creations' answers, the command log and the log records (DEBUG) for:

* any of the plaintexts;
* any ``ENC:`` ciphertext;
* a secret-named field (``password``, ``token``, ``api_key_hash``, ``*_secret`` ...) holding text
  (the command log may show ``"***"`` in recorded payloads, nothing else).

With the EE plugin ``ee_apikeys``, tenant API keys are shown exactly once: as the top-level
``api_key`` of the answer that creates them (``tenants/add`` creating a tenant,
``tenants/create_api_key``, ``api_keys/add``). The scan allows that field there only, and checks
that no other answer, no command log entry and no log record holds any of those keys.

Run with and without an encryption key, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from quart import Quart

from mailproxy_core.crypto import ENCRYPTED_PREFIX, MASK, generate_key, is_secret_key
from mailproxy_core.kernel import MailProxy
from mailproxy_core.testing.dispatch import dispatch_now
from mailproxy_core.testing.fakes import TENANT_TOKEN_PREFIX
from mailproxy_core.testing.plugin import ADMIN_TOKEN
from mailproxy_core.testing.smtp import ScriptedServer

SECRETS = {
    "bearer token": "plain-bearer-token-4b1d",
    "bearer token (updated)": "plain-bearer-token-updated-77aa",
    "basic password": "plain-basic-password-9c2e",
    "signing secret": "plain-signing-secret-31f0",
    "signing secret (updated)": "plain-signing-secret-updated-5e5e",
    "signing secret (tenant)": "plain-signing-secret-tenant-0b0b",
    "smtp password": "plain-smtp-password-c4d7",
    "smtp password (tenant)": "plain-smtp-password-tenant-8a8a",
    "option api_key": "plain-option-api-key-62ab",
    "option nested token": "plain-option-token-e3e3",
    "storage secret key": "plain-storage-secret-1d9f",
    "storage nested password": "plain-storage-password-a0a0",
    "storage token (tenant)": "plain-storage-token-tenant-f00d",
    "attachment bearer token": "plain-attachment-token-5a5a",
    "attachment basic password": "plain-attachment-password-2c2c",
    "rejected account password": "plain-rejected-password-7777",
    "rejected bearer token": "plain-rejected-token-8888",
    "rejected attachment token": "plain-rejected-attachment-9999",
    "rejected storage secret": "plain-rejected-storage-aaaa",
}
"""Every plaintext these tests send; none may come back or be logged."""

S = SECRETS


@pytest.fixture(params=["with_key", "without_key"])
def encryption_key(request: pytest.FixtureRequest) -> str | None:
    """Run each test with secrets encrypted at rest and with secrets stored in plaintext."""
    return generate_key() if request.param == "with_key" else None


@dataclass(frozen=True)
class Answer:
    """One answer to scan: what was called, as whom, and the raw body."""

    label: str
    status: int
    text: str

    @property
    def json(self) -> Any:
        """The decoded body, or ``None`` when it is not JSON."""
        try:
            return json.loads(self.text)
        except ValueError:
            return None


class Caller:
    """Sends calls with one token and keeps every answer for the scan."""

    def __init__(self, app: Quart, token: str | None, who: str, answers: list[Answer]) -> None:
        self.app = app
        self._client = app.test_client()
        self._headers = {"X-API-Token": token} if token else {}
        self.who = who
        self.answers = answers

    async def post(self, path: str, body: dict[str, Any], expect: int = 200) -> Answer:
        """POST ``body``; the status must be ``expect``."""
        response = await self._client.post(path, json=body, headers=self._headers)
        return await self._keep(f"POST {path} as {self.who}", response, expect)

    async def get(self, path: str, query: dict[str, Any], expect: int | None = None) -> Answer:
        """GET with ``query`` (lists and objects JSON-encoded)."""
        encoded = {
            key: json.dumps(value) if isinstance(value, list | dict) else _text(value)
            for key, value in query.items()
        }
        response = await self._client.get(path, query_string=encoded, headers=self._headers)
        label = f"GET {path}?{encoded} as {self.who}"
        return await self._keep(label, response, expect)

    async def _keep(self, label: str, response: Any, expect: int | None) -> Answer:
        answer = Answer(label, response.status_code, await response.get_data(as_text=True))
        if expect is not None:
            assert answer.status == expect, f"{label}: expected {expect}, got {answer}"
        self.answers.append(answer)
        return answer


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def message(message_id: str, **extra: Any) -> dict[str, Any]:
    """A valid message of tenant ``acme`` through account ``acme-acct``."""
    return {
        "id": message_id,
        "tenant_id": "acme",
        "account_id": "acme-acct",
        "from": "Shop <shop@acme.example.com>",
        "to": ["alice@example.com"],
        "subject": "Your invoice",
        "body": "Attached.",
        **extra,
    }


async def create_objects_with_secrets(admin: Caller, tenant: Caller) -> None:
    """Create tenants, accounts, mounts and messages carrying every secret of ``SECRETS``.

    Also sends rejected calls carrying secrets: their error answers must not echo them.
    Messages with attachment credentials are in the suspended batch ``held`` (never sent).
    """
    await admin.post(
        "/tenants/add",
        {
            "id": "acme",
            "name": "Acme",
            # Loopback port 9 (discard): a delivery-report attempt fails at once, offline.
            "client_base_url": "http://127.0.0.1:9",
            "client_auth": {"method": "bearer", "token": S["bearer token"]},
            "report_signing_secret": S["signing secret"],
        },
    )
    await admin.post(
        "/tenants/add",
        {
            "id": "globex",
            "client_auth": {
                "method": "basic",
                "user": "globex-user",
                "password": S["basic password"],
            },
        },
    )
    await admin.post(
        "/tenants/update",
        {
            "tenant_id": "acme",
            "client_auth": {"method": "bearer", "token": S["bearer token (updated)"]},
            "report_signing_secret": S["signing secret (updated)"],
        },
    )
    await admin.post("/tenants/suspend_batch", {"tenant_id": "acme", "batch_code": "held"})
    await admin.post(
        "/accounts/add",
        {
            "id": "acme-acct",
            "tenant_id": "acme",
            "transport": "null",
            "user": "shop",
            "password": S["smtp password"],
            "options": {
                "api_key": S["option api_key"],
                "region": "eu",
                "nested": {"token": S["option nested token"], "level": 2},
            },
        },
    )
    await admin.post(
        "/storages/add",
        {
            "tenant_id": "acme",
            "name": "HOME",
            "protocol": "fake",
            "config": {
                "base_path": "/data/acme",
                "aws_access_key_id": "AKIA-PUBLIC-ID",
                "aws_secret_access_key": S["storage secret key"],
                "servers": [
                    {"host": "files.example.com", "password": S["storage nested password"]}
                ],
            },
        },
    )
    await admin.post(
        "/messages/add",
        message(
            "with-bearer-attachment",
            batch_code="held",
            attachments=[
                {
                    "filename": "invoice.pdf",
                    "storage_path": "https://files.acme.example.com/invoice.pdf",
                    "auth": {"method": "bearer", "token": S["attachment bearer token"]},
                }
            ],
        ),
    )
    batch = await admin.post(
        "/messages/add_batch",
        {
            "messages": [
                message(
                    "with-basic-attachment",
                    batch_code="held",
                    attachments=[
                        {
                            "filename": "report.pdf",
                            "storage_path": "https://files.acme.example.com/report.pdf",
                            "auth": {
                                "method": "basic",
                                "user": "files",
                                "password": S["attachment basic password"],
                            },
                        }
                    ],
                ),
                message("plain"),
            ]
        },
    )
    assert batch.json["queued"] == 2, batch
    # The tenant's own key writes secrets too.
    await tenant.post(
        "/accounts/add",
        {
            "id": "acme-acct2",
            "transport": "null",
            "user": "shop2",
            "password": S["smtp password (tenant)"],
        },
    )
    await tenant.post("/tenants/update", {"report_signing_secret": S["signing secret (tenant)"]})
    await tenant.post(
        "/storages/add",
        {"name": "TENANT", "protocol": "fake", "config": {"token": S["storage token (tenant)"]}},
    )
    # Rejected calls carrying secrets.
    await admin.post(
        "/accounts/add",
        {
            "id": "bad",
            "tenant_id": "acme",
            "transport": "null",
            "port": "not-a-port",
            "password": S["rejected account password"],
        },
        expect=422,
    )
    await admin.post(
        "/tenants/add",
        {
            "id": "bad-tenant",
            "client_auth": {"method": "bearer", "token": S["rejected bearer token"], "x": 1},
        },
        expect=422,
    )
    await admin.post(
        "/messages/add",
        message(
            "bad-attachment",
            attachments=[{"storage_path": "x", "auth": {"token": S["rejected attachment token"]}}],
        ),
        expect=422,
    )
    await tenant.post(
        "/storages/add",
        {
            "name": "BAD",
            "protocol": "no-such-protocol",
            "config": {"password": S["rejected storage secret"]},
        },
        expect=422,
    )


async def create_api_keys(admin: Caller) -> None:
    """EE ``ee_apikeys``: replace acme's default key, add scoped keys, use and revoke some."""
    replaced = await admin.post("/tenants/create_api_key", {"tenant_id": "acme"})
    scoped = await admin.post(
        "/api_keys/add", {"tenant_id": "acme", "name": "ci", "scopes": ["send", "read"]}
    )
    await admin.post(
        "/api_keys/add",
        {"tenant_id": "globex", "name": "expired", "scopes": ["read"], "expires_at": 1},
    )
    default = Caller(admin.app, replaced.json["api_key"], "acme's default key", admin.answers)
    await default.get("/tenants/get", {}, expect=200)
    await default.post("/api_keys/add", {"name": "more", "scopes": ["manage"]})
    await default.post("/api_keys/revoke", {"name": "more"})
    ci = Caller(admin.app, scoped.json["api_key"], "acme's ci key", admin.answers)
    await ci.get("/api_keys/list", {}, expect=200)
    await ci.post("/api_keys/add", {"name": "other", "scopes": ["manage"]}, expect=403)
    await admin.post("/api_keys/revoke", {"tenant_id": "acme", "name": "ci"})
    await ci.get("/tenants/get", {}, expect=401)


Queries = Callable[[Caller], Awaitable[list[dict[str, Any]]]]


def queries(*variants: dict[str, Any]) -> Queries:
    """Fixed query variants of a GET route."""

    async def build(admin: Caller) -> list[dict[str, Any]]:
        return [dict(variant) for variant in variants]

    return build


async def every_command_id(admin: Caller) -> list[dict[str, Any]]:
    entries = (await admin.get("/command_log/list", {"limit": 10000}, expect=200)).json
    assert entries, "the calls above must have been recorded"
    return [{"command_id": entry["id"]} for entry in entries]


ACME_AND_GLOBEX = ({"tenant_id": "acme"}, {"tenant_id": "globex"})

GET_QUERIES: dict[str, Queries] = {
    "/health": queries({}),
    "/health/ready": queries({}),
    "/metrics": queries({}),
    "/openapi.json": queries({}),
    "/docs": queries({}),
    "/instance/health": queries({}),
    "/instance/status": queries({}),
    "/instance/get": queries({}),
    "/instance/plugins": queries({}),
    "/instance/get_sync_status": queries({}),
    "/tenants/get": queries(*ACME_AND_GLOBEX),
    "/tenants/list": queries({}, {"active_only": True}),
    "/tenants/get_suspended_batches": queries(*ACME_AND_GLOBEX),
    "/accounts/get": queries(
        {"tenant_id": "acme", "account_id": "acme-acct"},
        {"tenant_id": "acme", "account_id": "acme-acct2"},
    ),
    "/accounts/list": queries(*ACME_AND_GLOBEX),
    "/instance/get_bounce_config": queries({}),
    "/suppressions/list": queries(*ACME_AND_GLOBEX),
    "/accounts/list_pec": queries(*ACME_AND_GLOBEX),
    "/accounts/get_pec_ids": queries(*ACME_AND_GLOBEX),
    "/storages/get": queries(
        {"tenant_id": "acme", "name": "HOME"}, {"tenant_id": "acme", "name": "TENANT"}
    ),
    "/storages/list": queries(*ACME_AND_GLOBEX),
    "/messages/get": queries(
        *(
            {"tenant_id": "acme", "message_id": message_id, "include_history": history}
            for message_id in ("with-bearer-attachment", "with-basic-attachment", "plain")
            for history in (False, True)
        )
    ),
    "/messages/list": queries(
        {},
        {"tenant_id": "acme"},
        {"tenant_id": "acme", "include_history": True},
        {"tenant_id": "acme", "active_only": True, "status": "pending"},
    ),
    "/messages/cleanup": queries({"tenant_id": "acme", "older_than_seconds": 86400}),
    "/messages/count_active": queries({}),
    "/messages/count_pending_for_tenant": queries({"tenant_id": "acme"}),
    "/command_log/list": queries({}, {"limit": 10000}, {"tenant_id": "acme"}),
    "/command_log/get": every_command_id,
    "/command_log/export": queries({}, {"tenant_id": "acme"}),
    "/api_keys/list": queries(*ACME_AND_GLOBEX),
}
"""Valid queries for every GET route. A GET route missing here fails the test: say how to call
it, so that its answers are scanned too."""


WEB_PAGES = "/ui/"
"""The dashboard's pages answer a session cookie, not a token: its own tests check them."""


def get_routes(app: Quart) -> list[str]:
    """Paths of every GET API route without path parameters, in url-map order."""
    paths: list[str] = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(WEB_PAGES):
            continue
        if "GET" in (rule.methods or ()) and "<" not in rule.rule and rule.rule not in paths:
            paths.append(rule.rule)
    return paths


async def call_every_get_route(app: Quart, callers: list[Caller]) -> None:
    """Call each GET route with each of its queries as each caller (answers are kept)."""
    admin = callers[0]
    missing = [path for path in get_routes(app) if path not in GET_QUERIES]
    assert not missing, f"GET routes without queries in GET_QUERIES: {missing}"
    for path in get_routes(app):
        for query in await GET_QUERIES[path](admin):
            for caller in callers:
                answer = await caller.get(path, query)
                if caller is admin:
                    assert answer.status == 200, f"the admin's call must succeed: {answer}"


def walk(value: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    """Every ``(location, key, value)`` of the mappings inside ``value``."""
    if isinstance(value, dict):
        for key, item in value.items():
            location = f"{path}.{key}" if path else str(key)
            yield location, str(key), item
            yield from walk(item, location)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from walk(item, f"{path}.{index}")


SHOWS_A_KEY_ONCE = ("POST /tenants/add ", "POST /tenants/create_api_key ", "POST /api_keys/add ")
"""Answers (labels) that show a new tenant API key once, as their top-level ``api_key``."""


def shown_keys(answers: list[Answer]) -> dict[str, Answer]:
    """Each tenant API key shown once, and the answer that showed it."""
    shown: dict[str, Answer] = {}
    for answer in answers:
        body = answer.json
        if answer.label.startswith(SHOWS_A_KEY_ONCE) and isinstance(body, dict):
            if isinstance(body.get("api_key"), str):
                shown[body["api_key"]] = answer
    return shown


def key_leaks(answers: list[Answer], records: list[logging.LogRecord]) -> list[str]:
    """Answers (but the one that showed it) and log records holding a tenant API key."""
    shown = shown_keys(answers)
    found = [
        f"{answer.label}: holds the API key shown by {origin.label}"
        for key, origin in shown.items()
        for answer in answers
        if answer is not origin and key in answer.text
    ]
    formatter = logging.Formatter()
    for record in records:
        text = f"{formatter.format(record)} {record.__dict__!r}"
        found += [
            f"log {record.name} {record.levelname}: holds the API key shown by {origin.label}"
            for key, origin in shown.items()
            if key in text
        ]
    return found


def leaks(answer: Answer) -> list[str]:
    """What ``answer`` reveals: plaintexts, ciphertexts, secret-named fields holding text
    (except the ``api_key`` an answer of ``SHOWS_A_KEY_ONCE`` shows once)."""
    found = [
        f"{answer.label}: holds the {name}"
        for name, value in SECRETS.items()
        if value in answer.text
    ]
    if ENCRYPTED_PREFIX in answer.text:
        found.append(f"{answer.label}: holds an {ENCRYPTED_PREFIX} ciphertext")
    if answer.label.startswith("GET /openapi.json"):
        return found  # the schema names its write-only fields: keys, not values
    masked_ok = "/command_log/" in answer.label
    for location, key, value in walk(answer.json):
        if not (isinstance(value, str) and value and is_secret_key(key)):
            continue
        if masked_ok and value == MASK:
            continue
        if location == "api_key" and answer.label.startswith(SHOWS_A_KEY_ONCE):
            continue  # shown once; key_leaks checks that it appears nowhere else
        found.append(f"{answer.label}: field {location} holds a value")
    return found


def logged_leaks(records: list[logging.LogRecord]) -> list[str]:
    """Log records that hold a plaintext secret (message, arguments, extras or traceback)."""
    formatter = logging.Formatter()
    found = []
    for record in records:
        text = f"{formatter.format(record)} {record.__dict__!r}"
        for name, value in SECRETS.items():
            if value in text:
                line = record.getMessage()[:160]
                found.append(f"log {record.name} {record.levelname} {line!r}: holds the {name}")
    return found


@pytest.fixture
def callers(mp_app: Quart) -> list[Caller]:
    """Admin, then tenant ``acme``; they share one list of answers."""
    answers: list[Answer] = []
    return [
        Caller(mp_app, ADMIN_TOKEN, "admin", answers),
        Caller(mp_app, f"{TENANT_TOKEN_PREFIX}acme", "tenant acme", answers),
    ]


async def test_no_answer_or_log_holds_a_secret(
    mp_app: Quart, callers: list[Caller], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    admin, tenant = callers
    await create_objects_with_secrets(admin, tenant)
    if any(rule.rule == "/api_keys/add" for rule in mp_app.url_map.iter_rules()):
        await create_api_keys(admin)
    await call_every_get_route(mp_app, callers)
    answers = admin.answers
    assert any("/command_log/export" in answer.label for answer in answers)
    problems = [problem for answer in answers for problem in leaks(answer)]
    problems += logged_leaks(caplog.records)
    problems += key_leaks(answers, caplog.records)
    assert not problems, "secrets revealed:\n" + "\n".join(problems)


async def test_instance_config_does_not_echo_secret_named_values(callers: list[Caller]) -> None:
    # The instance config is free-form, but a value under a secret name (``*_password``,
    # ``*_token`` ...) is a secret like any other: stored, never shown (API.md §2) -- and
    # ``instance/get`` is readable by every tenant key.
    admin, tenant = callers
    secret = "plain-instance-relay-password-4242"
    await admin.post("/instance/update", {"config": {"relay_password": secret, "region": "eu"}})
    answers = [
        admin.answers[-1],
        await admin.get("/instance/get", {}, expect=200),
        await tenant.get("/instance/get", {}, expect=200),
    ]
    shown = [answer.label for answer in answers if secret in answer.text]
    assert not shown, f"the relay password is shown by: {shown}"


@pytest.mark.requires_plugins("smtp")
async def test_sending_keeps_secrets_out_of_history_and_logs(
    mp_app: Quart,
    mp_kernel: MailProxy,
    callers: list[Caller],
    smtp_server: Callable[..., Awaitable[ScriptedServer]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The dispatcher decrypts the account password to log in: a successful login, a refused one
    # and the resulting events must not put it in any answer or log line.
    from aiosmtpd.smtp import AuthResult, LoginPassword

    def authenticator(
        server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        good = isinstance(data, LoginPassword) and data.password == S["smtp password"].encode()
        # handled=False: aiosmtpd answers a failure itself (535).
        return AuthResult(success=good, handled=False, auth_data=data if good else None)

    server = await smtp_server(
        authenticator=authenticator, auth_required=True, auth_require_tls=False
    )
    caplog.set_level(logging.DEBUG)
    admin, _ = callers
    await admin.post("/tenants/add", {"id": "acme"})
    for account_id, password in (
        ("acme-acct", S["smtp password"]),
        ("wrong", S["smtp password (tenant)"]),
    ):
        await admin.post(
            "/accounts/add",
            {
                "id": account_id,
                "tenant_id": "acme",
                "host": "127.0.0.1",
                "port": server.port,
                "use_tls": False,
                "user": "shop",
                "password": password,
            },
        )
    await admin.post(
        "/messages/add_batch",
        {"messages": [message("sent"), message("refused", account_id="wrong")]},
    )
    await dispatch_now(mp_kernel)
    listed = await admin.get(
        "/messages/list", {"tenant_id": "acme", "include_history": True}, expect=200
    )
    statuses = {entry["id"]: entry["status"] for entry in listed.json}
    assert statuses == {"sent": "sent", "refused": "error"}, listed
    for message_id in statuses:
        query = {"tenant_id": "acme", "message_id": message_id, "include_history": True}
        await admin.get("/messages/get", query, expect=200)
    await admin.get("/command_log/export", {}, expect=200)
    problems = [problem for answer in admin.answers for problem in leaks(answer)]
    problems += logged_leaks(caplog.records)
    assert not problems, "secrets revealed:\n" + "\n".join(problems)
