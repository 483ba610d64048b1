"""The admin token plugin against a real app and a real SQLite database."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailproxy_core import Settings
from mailproxy_core.app import create_app, kernel_of
from mailproxy_core.cli import main
from mailproxy_core.kernel import build_kernel


def settings(db: Path, **values: object) -> Settings:
    return Settings.from_values(db=str(db), **values)


def test_auth_token_is_installed(tmp_path):
    mp = build_kernel(settings(tmp_path / "mp.db"))
    info = {p.name: p for p in mp.plugins}["auth_token"]
    assert info.status == "loaded"
    assert info.distribution == "mailproxy-auth-token"
    assert "admin_token" in mp.registry.auth_backends


async def test_configured_token_in_either_header(tmp_path):
    app = create_app(settings(tmp_path / "mp.db", api_token="s3cret-token"))
    async with app.test_app():
        client = app.test_client()
        assert (
            await client.get("/instance/get", headers={"X-API-Token": "s3cret-token"})
        ).status_code == 200
        bearer = {"Authorization": "Bearer s3cret-token"}
        assert (await client.get("/instance/get", headers=bearer)).status_code == 200
        wrong = await client.get("/instance/get", headers={"X-API-Token": "s3cret-tokem"})
        assert wrong.status_code == 401
        assert (await wrong.get_json())["code"] == "unauthorized"
        assert (await client.get("/instance/get")).status_code == 401


async def test_public_paths_answer_without_a_token(tmp_path):
    app = create_app(settings(tmp_path / "mp.db", api_token="s3cret-token"))
    async with app.test_app():
        client = app.test_client()
        for path in ("/health", "/openapi.json", "/docs", "/instance/health"):
            assert (await client.get(path)).status_code == 200, path
        assert (await client.get("/instance/plugins")).status_code == 401


async def start_and_collect(db: Path) -> tuple[list[str], object]:
    app = create_app(settings(db))
    announced: list[str] = []
    kernel_of(app).announce = announced.append
    return announced, app


async def test_generated_token_is_shown_once_and_stored_as_a_hash(tmp_path):
    db = tmp_path / "mp.db"
    announced, app = await start_and_collect(db)
    async with app.test_app():  # type: ignore[attr-defined]
        assert len(announced) == 1 and "shown once" in announced[0]
        token = announced[0].rsplit(" ", 1)[-1]
        client = app.test_client()  # type: ignore[attr-defined]
        assert (
            await client.get("/instance/get", headers={"X-API-Token": token})
        ).status_code == 200
        assert (
            await client.get("/instance/get", headers={"X-API-Token": "guess"})
        ).status_code == 401
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("mp.db*"))
    assert token.encode() not in stored  # only the hash is kept

    again, app2 = await start_and_collect(db)
    async with app2.test_app():  # type: ignore[attr-defined]
        assert token not in again[0] and "already set" in again[0]
        client = app2.test_client()  # type: ignore[attr-defined]
        assert (
            await client.get("/instance/get", headers={"X-API-Token": token})
        ).status_code == 200


def test_regenerate_replaces_the_old_token(tmp_path, monkeypatch: pytest.MonkeyPatch):
    db = tmp_path / "mp.db"

    async def first_start() -> str:
        announced, app = await start_and_collect(db)
        async with app.test_app():  # type: ignore[attr-defined]
            return announced[0].rsplit(" ", 1)[-1]

    old = asyncio.run(first_start())
    monkeypatch.setenv("MAILPROXY_DB", str(db))
    monkeypatch.delenv("MAILPROXY_API_TOKEN", raising=False)
    result = CliRunner().invoke(main, ["token", "--regenerate"])
    assert result.exit_code == 0, result.output
    new = result.output.strip().rsplit(" ", 1)[-1]
    assert new != old

    async def statuses() -> tuple[int, int]:
        _, app = await start_and_collect(db)
        async with app.test_app():  # type: ignore[attr-defined]
            client = app.test_client()  # type: ignore[attr-defined]
            fresh = await client.get("/instance/get", headers={"X-API-Token": new})
            stale = await client.get("/instance/get", headers={"X-API-Token": old})
            return fresh.status_code, stale.status_code

    assert asyncio.run(statuses()) == (200, 401)
