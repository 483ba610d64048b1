"""Fuzz every operation of ``/openapi.json`` with schemathesis: a client's input is never a 500,
and every answer is one the document declares (status code, content type, body schema).

The app runs in process (schemathesis' ASGI transport starts its lifespan, so the kernel and the
database are up), on SQLite, authenticated as the admin. A tenant ``acme`` with an account, a
storage mount and messages is seeded, and about half of the generated calls are aimed at it
(``tenant_id``, ``account_id``, ``message_id``, ``name`` replaced by the seeded ids) so that calls
get past "not found" into the real work. Calls that may delete the seeded objects re-create them.

Deterministic: a fixed seed, derandomized generation, no example database. The number of
examples per operation is bounded (``MAX_EXAMPLES``) so that the whole run stays well under a
minute. A failure names the operation and the exact request (schemathesis prints a curl line).

``test_edge_inputs_are_client_errors`` replays, on SQLite and PostgreSQL, the kinds of input that
fuzzing showed to be answered 500 (integers beyond 64 bits, NaN/Infinity, NUL characters, lone
surrogates), so that each stays fixed once fixed.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
import schemathesis
from quart import Quart
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from mailproxy_core.app import create_app
from mailproxy_core.crypto import generate_key
from mailproxy_core.settings import Settings
from mailproxy_core.testing.fakes import TenantTokenPlugin
from mailproxy_core.testing.plugin import ADMIN_TOKEN, admin_token_plugins
from tests.api_contract.conftest import FakeStoragePlugin

MAX_EXAMPLES = 25
"""Examples per operation in the fuzzing phase (the coverage phase adds its own few)."""

SEED = 20240601

SEEDED = {
    "tenant_id": "acme",
    "account_id": "acme-acct",
    "message_id": "m1",
    "name": "HOME",
}
"""Parameter values that name seeded objects."""

REPAIRED_AFTER = ("/delete", "/delete_batch", "/cleanup", "/update", "/purge", "/suspend")
"""Operations (path suffixes) that may delete or disable seeded objects: re-seed afterwards."""


def seed(client: Any) -> None:
    """Create (or restore) tenant ``acme`` with its account, mount and messages (idempotent)."""
    admin = {"X-API-Token": ADMIN_TOKEN}

    def post(path: str, body: dict[str, Any], allowed: tuple[int, ...] = (200,)) -> None:
        response = client.post(path, json=body, headers=admin)
        assert response.status_code in allowed, f"seeding {path}: {response.text}"

    post("/tenants/add", {"id": "acme", "name": "Acme"}, allowed=(200, 409))
    post("/tenants/update", {"tenant_id": "acme", "active": True})
    post("/tenants/activate_batch", {"tenant_id": "acme"})
    post("/accounts/add", {"id": "acme-acct", "tenant_id": "acme", "transport": "null"})
    post(
        "/storages/add",
        {"tenant_id": "acme", "name": "HOME", "protocol": "fake", "config": {"base_path": "/d"}},
    )
    messages = [
        {
            "id": message_id,
            "tenant_id": "acme",
            "account_id": "acme-acct",
            "from": "shop@acme.example.com",
            "to": "alice@example.com",
            "subject": "hello",
            "body": "hello",
            "batch_code": "b1",
        }
        for message_id in ("m1", "m2")
    ]
    post("/messages/add_batch", {"messages": messages})


def build_app(root: Path) -> Quart:
    """The app under fuzzing, on SQLite in ``root`` (created when the app starts)."""
    settings = Settings.from_values(
        db=str(root / "mailproxy.db"),
        api_token=ADMIN_TOKEN,
        test_mode=True,
        encryption_key=generate_key(),
        plugin_sections={"file": {"root": str(root / "mail-out")}},
    )
    plugins = {
        **admin_token_plugins(),
        "tenant_tokens": TenantTokenPlugin(),
        "fake_storage": FakeStoragePlugin(),
    }
    return create_app(settings, extra_plugins=plugins)


def openapi_document(app: Quart) -> dict[str, Any]:
    """``/openapi.json`` of an app that is not started (the document needs no kernel)."""

    async def fetch() -> dict[str, Any]:
        response = await app.test_client().get("/openapi.json")
        assert response.status_code == 200
        return dict(await response.get_json())

    return asyncio.run(fetch())


# The schema must exist when pytest collects this module (``schemathesis.pytest.from_fixture``,
# which would defer it, does not work with pytest 9), so the app is *built* here; it is started
# (lifespan: kernel, database) only by the first call, in ``running_app``, and stopped after.
APP_ROOT = Path(tempfile.gettempdir()) / f"mailproxy-fuzz-{uuid.uuid4().hex[:12]}"
APP = build_app(APP_ROOT)
schema = schemathesis.openapi.from_dict(
    openapi_document(APP),
    config=SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "headers": {"X-API-Token": ADMIN_TOKEN},
            "generation": {
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
            },
            "continue-on-failure": True,
        }
    ),
)
schema.app = APP


@pytest.fixture(scope="module")
def running_app() -> Iterator[Quart]:
    """Start ``APP`` in schemathesis' ASGI event loop, seed it; stop it after the module."""
    APP_ROOT.mkdir(parents=True, exist_ok=True)
    try:
        with asgi.get_client(APP) as client:
            seed(client)
        yield APP
    finally:
        asgi.shutdown_lifespans()
        shutil.rmtree(APP_ROOT, ignore_errors=True)


def aim_at_seeded_objects(case: Any) -> None:
    """Replace id parameters of the call by the seeded ids (where the call has them)."""
    for container in (case.query, case.body):
        if isinstance(container, dict):
            for key, value in SEEDED.items():
                if key in container:
                    container[key] = value


CONFORMANCE = (status_code_conformance, content_type_conformance, response_schema_conformance)
"""Checks that an answer is one the document declares: status code, content type, body."""


def checks_for(case: Any) -> list[Any]:
    """Every check for the generated API and ``/health``; plugin blueprint routes that document
    no responses (file downloads, ``/metrics`` text) are only checked for server errors."""
    if case.operation.definition.raw.get("responses"):
        return [not_a_server_error, *CONFORMANCE]
    return [not_a_server_error]


@pytest.mark.usefixtures("running_app")
@schema.given(aimed=st.booleans())
@schema.parametrize()
def test_no_operation_answers_a_server_error(case: Any, aimed: bool) -> None:
    if aimed:
        aim_at_seeded_objects(case)
    try:
        case.call_and_validate(checks=checks_for(case))
    finally:
        if case.path.endswith(REPAIRED_AFTER):
            with asgi.get_client(APP) as client:
                seed(client)


BIG = 10**30
"""An integer no database column holds (SQLite and PostgreSQL integers are 64-bit)."""

SEND = '"account_id":"acme-acct","from":"a@b.co","to":"c@d.co","subject":"s","body":"b"'

EDGE_INPUTS: tuple[tuple[str, str, dict[str, str] | str], ...] = (
    # integers beyond 64 bits
    ("GET", "/command_log/get", {"command_id": str(BIG)}),
    ("GET", "/command_log/get", {"command_id": str(-BIG)}),
    ("GET", "/command_log/get", {"command_id": str(2**63)}),
    ("GET", "/command_log/list", {"offset": str(BIG)}),
    ("GET", "/command_log/list", {"since_ts": str(BIG)}),
    ("GET", "/command_log/list", {"until_ts": str(-BIG)}),
    ("GET", "/command_log/export", {"offset": str(BIG)}),
    ("GET", "/command_log/export", {"since_ts": str(BIG)}),
    ("POST", "/command_log/purge", f'{{"threshold_ts": {BIG}}}'),
    ("POST", "/command_log/purge", f'{{"threshold_ts": {-BIG}}}'),
    ("POST", "/accounts/add", f'{{"id":"a1","tenant_id":"acme","transport":"null","ttl":{BIG}}}'),
    (
        "POST",
        "/accounts/add",
        f'{{"id":"a1","tenant_id":"acme","transport":"null","batch_size":{BIG}}}',
    ),
    (
        "POST",
        "/accounts/add",
        f'{{"id":"a1","tenant_id":"acme","transport":"null","limit_per_day":{BIG}}}',
    ),
    ("POST", "/messages/cleanup", f'{{"tenant_id":"acme","older_than_seconds":{BIG}}}'),
    ("POST", "/messages/delete", f'{{"message_pk":{BIG}}}'),
    ("GET", "/messages/list", {"tenant_id": "acme", "offset": str(BIG)}),
    ("POST", "/messages/add", f'{{"id":"x1","tenant_id":"acme",{SEND},"deferred_ts":{BIG}}}'),
    # NaN / Infinity: accepted by Python's JSON parser, not JSON, and unanswerable as JSON
    ("POST", "/instance/update", '{"config": {"a": NaN}}'),
    ("POST", "/instance/update", '{"config": {"a": Infinity}}'),
    (
        "POST",
        "/tenants/add",
        '{"id":"t-inf","large_file_config":{"enabled":true,"max_size_mb":Infinity,"action":"warn"}}',
    ),
    (
        "POST",
        "/accounts/add",
        '{"id":"a2","tenant_id":"acme","transport":"null","options":{"x":NaN}}',
    ),
    (
        "POST",
        "/storages/add",
        '{"tenant_id":"acme","name":"N1","protocol":"fake","config":{"x":NaN}}',
    ),
    ("POST", "/messages/add", f'{{"id":"x3","tenant_id":"acme",{SEND},"headers":{{"X-A":NaN}}}}'),
    # NUL characters (PostgreSQL text cannot hold them)
    ("POST", "/tenants/add", '{"id":"t-nul","name":"a\\u0000b"}'),
    ("POST", "/instance/update", '{"name":"a\\u0000b"}'),
    ("POST", "/instance/update", '{"config":{"k":"a\\u0000b"}}'),
    ("POST", "/instance/update", '{"edition":"a\\u0000b"}'),
    (
        "POST",
        "/accounts/add",
        '{"id":"a3","tenant_id":"acme","transport":"null","user":"u\\u0000"}',
    ),
    ("POST", "/messages/add", f'{{"id":"x\\u0000","tenant_id":"acme",{SEND}}}'),
    ("GET", "/tenants/get", {"tenant_id": "a\x00b"}),
    ("GET", "/tenants/get_suspended_batches", {"tenant_id": "a\x00b"}),
    ("GET", "/accounts/get", {"tenant_id": "acme", "account_id": "a\x00b"}),
    ("GET", "/storages/get", {"tenant_id": "acme", "name": "a\x00b"}),
    ("GET", "/command_log/list", {"endpoint_filter": "a\x00b"}),
    ("GET", "/command_log/list", {"tenant_id": "a\x00b"}),
    ("POST", "/tenants/update", '{"tenant_id":"a\\u0000b","name":"x"}'),
    ("POST", "/tenants/delete", '{"tenant_id":"a\\u0000b"}'),
    ("POST", "/tenants/suspend_batch", '{"tenant_id":"acme","batch_code":"a\\u0000b"}'),
    ("POST", "/accounts/delete", '{"tenant_id":"acme","account_id":"a\\u0000b"}'),
    ("POST", "/storages/delete", '{"tenant_id":"acme","name":"a\\u0000b"}'),
    ("POST", "/instance/suspend", '{"tenant_id":"a\\u0000b"}'),
    # lone surrogates (valid JSON escapes, not encodable as UTF-8)
    ("POST", "/tenants/add", '{"id":"t-sur","name":"\\ud800"}'),
    ("POST", "/tenants/add", '{"id":"\\ud800"}'),
    ("POST", "/instance/update", '{"name":"\\ud800"}'),
    (
        "POST",
        "/accounts/add",
        '{"id":"a4","tenant_id":"acme","transport":"null","password":"\\ud800"}',
    ),
    (
        "POST",
        "/storages/add",
        '{"tenant_id":"acme","name":"N2","protocol":"fake","config":{"password":"\\ud800"}}',
    ),
    (
        "POST",
        "/messages/add",
        '{"id":"x6","tenant_id":"acme","account_id":"acme-acct","from":"a@b.co","to":"c@d.co",'
        '"subject":"\\ud800","body":"b"}',
    ),
)
"""Inputs found by fuzzing and by hand around its findings; each was once answered 500."""


async def test_edge_inputs_are_client_errors(mp_app: Quart) -> None:
    # The same kinds of input the fuzzer produces, replayed on SQLite and PostgreSQL (the fuzz
    # run itself uses SQLite only): every one is a client's mistake, so never a 5xx.
    client = mp_app.test_client()
    headers = {"X-API-Token": ADMIN_TOKEN, "Content-Type": "application/json"}
    await client.post("/tenants/add", json={"id": "acme"}, headers=headers)
    account = {"id": "acme-acct", "tenant_id": "acme", "transport": "null"}
    await client.post("/accounts/add", json=account, headers=headers)
    failures = []
    for method, path, data in EDGE_INPUTS:
        if isinstance(data, dict):
            response = await client.get(path, query_string=data, headers=headers)
        else:
            response = await client.post(path, data=data.encode(), headers=headers)
        if response.status_code >= 500:
            body = await response.get_data(as_text=True)
            failures.append(f"{method} {path} {data!r} -> {response.status_code} {body}")
    assert not failures, "server errors for client input:\n" + "\n".join(failures)
