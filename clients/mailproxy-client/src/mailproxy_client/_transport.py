"""HTTP transport shared by the sync and async clients: encoding, headers and error mapping."""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping
from typing import Any

import httpx

from ._errors import MailProxyError

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 30.0
USER_AGENT = "mailproxy-client"


def tls_for(url: str) -> ssl.SSLContext | bool:
    """The ``verify`` argument for a client of ``url``.

    Loading the system's CA certificates takes ~0.15 s, most of a short command's start-up. A
    plain-HTTP base URL never needs them, so it gets a context with no CA at all: verification
    stays on, and an HTTPS request through it fails instead of going unverified.
    """
    if url.startswith("http://"):
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    return True


def headers_for(token: str | None) -> dict[str, str]:
    """Request headers: JSON answers, and the token as ``X-API-Token`` when one is given."""
    headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
    if token:
        headers["X-API-Token"] = token
    return headers


def query_value(value: Any) -> str:
    """One query-string value: booleans as ``true``/``false``, lists and objects as JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return json.dumps(value)


def request_args(method: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """``httpx`` keyword arguments: GET sends ``params`` as the query, POST as the JSON body.

    ``None`` values are left out, so the service applies its own default.
    """
    sent = {name: value for name, value in params.items() if value is not None}
    if method == "GET":
        return {"params": {name: query_value(value) for name, value in sent.items()}}
    return {"json": sent}


def result_of(response: httpx.Response) -> Any:
    """The decoded answer of a successful call.

    Raises:
        MailProxyError: the service answered with an error status.
    """
    if response.status_code >= 400:
        raise error_of(response)
    content_type = response.headers.get("content-type", "")
    if "json" not in content_type:
        return response.text
    return response.json()


def error_of(response: httpx.Response) -> MailProxyError:
    """The exception for an error answer (the service's ``{"detail", "code"}`` body)."""
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "detail" in body:
        detail = body["detail"]
        if not isinstance(detail, str):
            detail = json.dumps(detail)
        return MailProxyError(
            response.status_code,
            str(body.get("code") or f"http_{response.status_code}"),
            detail,
            errors=body.get("errors"),
            body=body,
        )
    text = response.text.strip()[:500] or response.reason_phrase
    return MailProxyError(response.status_code, f"http_{response.status_code}", text, body=body)


def unreachable(url: str, exc: Exception) -> MailProxyError:
    """The exception for a service that could not be reached (status 0)."""
    return MailProxyError(
        0,
        "connection_error",
        f"cannot reach mail-proxy at {url} ({type(exc).__name__}: {exc})",
    )
