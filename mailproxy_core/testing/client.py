"""A small API client over Quart's test client, speaking the ``/{entity}/{method}`` convention."""

from __future__ import annotations

import re
from typing import Any

from .fakes import TENANT_TOKEN_PREFIX

_UTC_TEXT = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")


def is_utc_text(value: Any) -> bool:
    """Whether ``value`` is a ``created_at``/``updated_at`` as answered: ``2026-12-06 15:20:27``."""
    return isinstance(value, str) and _UTC_TEXT.fullmatch(value) is not None


class Response:
    """Status and decoded JSON body of one call."""

    def __init__(self, status: int, body: Any, headers: Any) -> None:
        self.status = status
        self.json = body
        self.headers = headers

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.json!r}>"


class ApiClient:
    """Calls the API with a token (``None`` = anonymous)."""

    def __init__(self, test_client: Any, token: str | None) -> None:
        self._client = test_client
        self.token = token

    def _headers(self) -> dict[str, str]:
        return {"X-API-Token": self.token} if self.token else {}

    async def get(self, path: str, **params: Any) -> Response:
        query = {k: _query_value(v) for k, v in params.items() if v is not None}
        resp = await self._client.get(path, query_string=query, headers=self._headers())
        return Response(resp.status_code, await resp.get_json(), resp.headers)

    async def post(self, path: str, json: Any = None, **fields: Any) -> Response:
        body = json if json is not None else fields
        resp = await self._client.post(path, json=body, headers=self._headers())
        return Response(resp.status_code, await resp.get_json(), resp.headers)

    def with_token(self, token: str | None) -> ApiClient:
        return ApiClient(self._client, token)

    def as_tenant(self, tenant_id: str) -> ApiClient:
        """A client authenticated as ``tenant_id`` through the test-only tenant backend."""
        return ApiClient(self._client, f"{TENANT_TOKEN_PREFIX}{tenant_id}")


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
