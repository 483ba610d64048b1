"""What genro-mail-proxy 0.7.0 clients read and send, checked on SQLite and PostgreSQL.

Each test covers one difference a reference client used to hit: the sender sent as
``from_addr``, ``smtp_ts``/``error`` in the message object, ``pk`` and ``created_at`` as text,
``GET /messages/cleanup`` and the derived ``edition`` with ``instance/upgrade_to_ee``.
(``instance/update api_token`` needs the ``auth_token`` plugin: see its own tests.)
"""

from __future__ import annotations

import calendar
import email
import importlib.metadata
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from mailproxy_core import PermanentSendError, hookimpl
from mailproxy_core.db import schema
from mailproxy_core.entities.edition import EE_DISTRIBUTIONS
from mailproxy_core.kernel import MailProxy
from mailproxy_core.settings import Settings
from mailproxy_core.testing.client import ApiClient, is_utc_text
from mailproxy_core.testing.dispatch import dispatch_now
from mailproxy_core.testing.fakes import RecordingTransportPlugin, TenantTokenPlugin
from mailproxy_core.testing.plugin import ADMIN_TOKEN

INSTALLED_EE_PLUGINS = tuple(
    sorted(
        entry.name
        for entry in importlib.metadata.entry_points(group="mailproxy")
        if entry.name.startswith("ee_")
    )
)
"""Enterprise plugins installed in this environment: disabled here, so that the edition tests
see exactly the plugins they register."""


@pytest.fixture
def mp_settings(db_url: str, tmp_path: Path) -> Settings:
    """An instance on SQLite or PostgreSQL, without the installed enterprise plugins."""
    return Settings.from_values(
        db=db_url, api_token=ADMIN_TOKEN, test_mode=True, disabled_plugins=INSTALLED_EE_PLUGINS
    )


@pytest.fixture(autouse=True)
def _tenant_keys(register_plugin: Any) -> None:
    register_plugin(TenantTokenPlugin(), "tenant_tokens")


@pytest.fixture(autouse=True)
def sent_ok(register_plugin: Any) -> RecordingTransportPlugin:
    return register_plugin(RecordingTransportPlugin("recording"), "recording_transport")  # type: ignore[no-any-return]


@pytest.fixture(autouse=True)
def refused(register_plugin: Any) -> RecordingTransportPlugin:
    plugin = RecordingTransportPlugin("refusing")
    plugin.transport.fail_with = PermanentSendError("550 5.1.1 User unknown", smtp_code=550)
    return register_plugin(plugin, "refusing_transport")  # type: ignore[no-any-return]


def message(message_id: str, account_id: str = "ok", **fields: Any) -> dict[str, Any]:
    """A message as the reference client's ``messages.add`` sends it (sender as from_addr)."""
    return {
        "id": message_id,
        "tenant_id": "acme",
        "account_id": account_id,
        "from_addr": "Shop <shop@acme.test>",
        "to": ["bob@example.com"],
        "subject": f"Subject {message_id}",
        "body": "Hello",
        **fields,
    }


@pytest.fixture
async def admin(
    mp_client: ApiClient, sent_ok: RecordingTransportPlugin, refused: RecordingTransportPlugin
) -> ApiClient:
    assert (await mp_client.post("/tenants/add", json={"id": "acme"})).status == 200
    for account_id, transport in (("ok", "recording"), ("bad", "refusing")):
        account = {"id": account_id, "tenant_id": "acme", "host": "h.test", "port": 25}
        response = await mp_client.post("/accounts/add", json={**account, "transport": transport})
        assert response.status == 200, response.json
    return mp_client


async def test_from_addr_is_stored_and_shown_as_from(
    admin: ApiClient, mp_kernel: MailProxy, sent_ok: RecordingTransportPlugin
) -> None:
    added = await admin.post("/messages/add", json=message("m1"))
    assert added.status == 200, added.json
    batch = await admin.post("/messages/add_batch", json={"messages": [message("m2")]})
    assert batch.json["queued"] == 1
    for message_id in ("m1", "m2"):
        got = (await admin.get("/messages/get", tenant_id="acme", message_id=message_id)).json
        assert got["payload"]["from"] == "Shop <shop@acme.test>"
        assert "from_addr" not in got["payload"]
    listed = (await admin.get("/messages/list", tenant_id="acme")).json
    assert [m["payload"]["from"] for m in listed] == ["Shop <shop@acme.test>"] * 2
    stored = await mp_kernel.db.fetch_all(sa.select(schema.messages.c.payload))
    assert all("from_addr" not in str(row["payload"]) for row in stored)

    await dispatch_now(mp_kernel)
    assert len(sent_ok.transport.sent) == 2
    for _, envelope, mime in sent_ok.transport.sent:
        assert envelope.sender == "shop@acme.test"
        assert email.message_from_bytes(mime)["From"] == "Shop <shop@acme.test>"


async def test_both_spellings_of_the_sender_are_refused(admin: ApiClient) -> None:
    both = message("m1", **{"from": "other@acme.test"})
    response = await admin.post("/messages/add", json=both)
    assert response.status == 422
    assert "from_addr" in response.json["detail"] and "not both" in response.json["detail"]
    batch = await admin.post("/messages/add_batch", json={"messages": [both, message("m2")]})
    assert batch.json["queued"] == 1
    assert [r["id"] for r in batch.json["rejected"]] == ["m1"]


async def test_a_sender_stored_as_from_addr_before_is_shown_as_from(
    admin: ApiClient, mp_kernel: MailProxy
) -> None:
    assert (await admin.post("/messages/add", json=message("old"))).status == 200
    # A row written before the sender was normalised still holds from_addr.
    legacy = '{"id": "old", "from_addr": "legacy@acme.test", "to": ["b@example.com"]}'
    await mp_kernel.db.execute(
        schema.messages.update().where(schema.messages.c.id == "old").values(payload=legacy)
    )
    got = (await admin.get("/messages/get", tenant_id="acme", message_id="old")).json
    assert got["payload"]["from"] == "legacy@acme.test" and "from_addr" not in got["payload"]


async def test_message_object_has_smtp_ts_error_text_pk_and_utc_created_at(
    admin: ApiClient, mp_kernel: MailProxy
) -> None:
    before = int(time.time())
    added = (await admin.post("/messages/add", json=message("sent"))).json
    assert isinstance(added["pk"], str) and added["pk"].isdigit()
    await admin.post("/messages/add", json=message("failed", account_id="bad"))
    await admin.post("/messages/add", json=message("waiting", deferred_ts=before + 3600))
    await dispatch_now(mp_kernel)
    after = int(time.time())

    sent = (await admin.get("/messages/get", tenant_id="acme", message_id="sent")).json
    assert sent["status"] == "sent" and sent["pk"] == added["pk"]
    assert isinstance(sent["smtp_ts"], int) and before <= sent["smtp_ts"] <= after
    assert sent["error"] is None
    assert is_utc_text(sent["created_at"]) and is_utc_text(sent["updated_at"])
    created = calendar.timegm(time.strptime(sent["created_at"], "%Y-%m-%d %H:%M:%S"))
    assert before <= created <= after

    failed = (await admin.get("/messages/get", tenant_id="acme", message_id="failed")).json
    assert failed["status"] == "error" and failed["smtp_ts"] is None
    assert "550 5.1.1 User unknown" in failed["error"]
    assert failed["last_error"] == failed["error"]

    waiting = (await admin.get("/messages/get", tenant_id="acme", message_id="waiting")).json
    assert waiting["smtp_ts"] is None and waiting["error"] is None
    listed = (await admin.get("/messages/list", tenant_id="acme")).json
    assert all(isinstance(m["pk"], str) for m in listed)
    assert {m["id"]: m["smtp_ts"] for m in listed}["sent"] == sent["smtp_ts"]


async def test_delete_takes_the_pk_as_text_or_number(admin: ApiClient) -> None:
    first = (await admin.post("/messages/add", json=message("a"))).json["pk"]
    second = (await admin.post("/messages/add", json=message("b"))).json["pk"]
    assert (await admin.post("/messages/delete", json={"message_pk": first})).json is True
    assert (await admin.post("/messages/delete", json={"message_pk": int(second)})).json is True
    assert (await admin.post("/messages/delete", json={"message_pk": first})).json is False
    for bogus in ("abc", "-1", "", "1" * 40, "\u0663"):
        response = await admin.post("/messages/delete", json={"message_pk": bogus})
        assert (response.status, response.json) == (200, False), bogus


async def test_tenant_and_account_timestamps_are_utc_text(admin: ApiClient) -> None:
    tenant = (await admin.get("/tenants/get", tenant_id="acme")).json
    account = (await admin.get("/accounts/get", tenant_id="acme", account_id="ok")).json
    instance = (await admin.get("/instance/get")).json
    for obj in (tenant, account, instance):
        assert is_utc_text(obj["created_at"]) and is_utc_text(obj["updated_at"]), obj
    assert isinstance(account["pk"], str)


async def test_cleanup_answers_get_and_post(admin: ApiClient, mp_kernel: MailProxy) -> None:
    for message_id in ("a", "b"):
        await admin.post("/messages/add", json=message(message_id))
    await dispatch_now(mp_kernel)
    # Sent two hours ago, and their events reported since.
    old = int(time.time()) - 7200
    await mp_kernel.db.execute(schema.messages.update().values(updated_at=old))
    await mp_kernel.db.execute(schema.message_events.update().values(reported_ts=old))
    anonymous = await admin.with_token(None).get("/messages/cleanup", tenant_id="acme")
    assert anonymous.status == 401
    kept = await admin.get("/messages/cleanup", tenant_id="acme", older_than_seconds=86400)
    assert kept.json == {"ok": True, "removed": 0}
    removed = await admin.get("/messages/cleanup", tenant_id="acme", older_than_seconds=3600)
    assert removed.status == 200 and removed.json == {"ok": True, "removed": 2}
    assert (await admin.get("/messages/list", tenant_id="acme")).json == []
    posted = await admin.post("/messages/cleanup", json={"tenant_id": "acme"})
    assert posted.json == {"ok": True, "removed": 0}
    unknown = await admin.get("/messages/cleanup", tenant_id="acme", older_than=1)
    assert unknown.status == 422

    log = (await admin.get("/command_log/list", endpoint_filter="cleanup")).json
    assert [entry["endpoint"] for entry in log] == [
        "GET /messages/cleanup",
        "GET /messages/cleanup",
        "POST /messages/cleanup",
        "GET /messages/cleanup",
    ]
    assert log[1]["payload"] == {"tenant_id": "acme", "older_than_seconds": "3600"}
    assert log[1]["response_body"] == {"ok": True, "removed": 2}

    spec = (await admin.get("/openapi.json")).json
    operations = spec["paths"]["/messages/cleanup"]
    assert set(operations) >= {"get", "post"}
    names = {p["name"] for p in operations["get"]["parameters"]}
    assert names >= {"tenant_id", "older_than_seconds"}
    assert operations["get"]["operationId"] != operations["post"]["operationId"]


async def test_edition_is_ce_without_enterprise_plugins(admin: ApiClient) -> None:
    assert (await admin.get("/instance/get")).json["edition"] == "ce"
    upgrade = await admin.post("/instance/upgrade_to_ee", json={})
    assert upgrade.status == 409
    for distribution in EE_DISTRIBUTIONS:
        assert distribution in upgrade.json["detail"]
    assert "pip install" in upgrade.json["detail"]
    refused = await admin.post("/instance/update", json={"edition": "ee"})
    assert refused.status == 409 and "mailproxy-ee-" in refused.json["detail"]
    same = await admin.post("/instance/update", json={"edition": "ce", "name": "relay"})
    assert same.status == 200 and same.json["edition"] == "ce" and same.json["name"] == "relay"
    assert (await admin.post("/instance/update", json={"edition": "pro"})).status == 422
    unchanged = await admin.post("/instance/update", json={"edition": "ee", "name": "other"})
    assert unchanged.status == 409
    assert (await admin.get("/instance/get")).json["name"] == "relay"
    stored = await admin.get("/instance/get")
    assert stored.json["edition"] == "ce"


class EnterpriseProbe:
    """Stands for any Enterprise plugin: what matters is a loaded plugin named ``ee_*``."""

    @hookimpl
    def mailproxy_register_endpoints(self) -> list[Any]:
        return []


@pytest.fixture
def enterprise(register_plugin: Any) -> None:
    register_plugin(EnterpriseProbe(), "ee_probe")


@pytest.mark.usefixtures("enterprise")
async def test_edition_is_ee_with_an_enterprise_plugin(admin: ApiClient) -> None:
    assert (await admin.get("/instance/get")).json["edition"] == "ee"
    upgrade = await admin.post("/instance/upgrade_to_ee", json={})
    assert upgrade.status == 200
    assert upgrade.json == {"ok": True, "edition": "ee", "plugins": ["ee_probe"]}
    assert (await admin.post("/instance/update", json={"edition": "ee"})).status == 200
    downgrade = await admin.post("/instance/update", json={"edition": "ce"})
    assert downgrade.status == 409 and "ee_probe" in downgrade.json["detail"]
    tenant = admin.as_tenant("acme")
    assert (await tenant.post("/instance/upgrade_to_ee", json={})).status == 403


async def test_openapi_documents_the_message_object(admin: ApiClient) -> None:
    spec = (await admin.get("/openapi.json")).json
    for path, answer in (("/messages/get", "MessageObject"), ("/messages/list", "MessageObject")):
        schema = spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
        assert answer in str(schema["schema"]), path
    properties = spec["components"]["schemas"]["MessageObject"]["properties"]
    assert properties["pk"]["type"] == "string"
    assert properties["created_at"]["type"] == "string"
    assert {"smtp_ts", "error", "last_error", "payload", "history"} <= set(properties)
