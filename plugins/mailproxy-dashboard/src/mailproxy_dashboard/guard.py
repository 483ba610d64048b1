"""Sign-in state of a dashboard request: session cookie, re-authentication, CSRF check."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from quart import Response, request
from werkzeug.datastructures import Headers

from mailproxy_core import AuthError, MailProxy, Principal, route_endpoint, route_info

from .sessions import COOKIE_NAME, Session, SessionStore

LOGIN_COOKIE = "mailproxy_ui_login"
"""Double-submit CSRF cookie of the sign-in form (there is no session yet to hold the token)."""

UI_PATH = "/ui/"

Route = tuple[str, str]
"""A generated API route as ``(entity, method)``: ``("messages", "retry")``."""

IDENTITY_ROUTE: Route = ("messages", "get")
"""The route a credential is checked against at sign-in and on every request: reading one of
its tenant's messages, the least any credential that may use the dashboard must be allowed (a
tenant key of any scope may; the Messages page is the one page every signed-in user gets)."""


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """What an auth backend reads of a request: the dashboard's credential, aimed at one route.

    Backends read the credential with ``extract_token(request)`` (its headers) and the route
    with ``route_info(request)`` (``endpoint``): the stand-in asks about the API route the
    dashboard is about to act through (``messages/retry`` for the Retry button), with that
    route's path and declared HTTP method, so a key's scopes decide exactly as they would for
    the API call. The client address and scheme are those of the real browser request.
    """

    headers: Headers
    path: str
    method: str
    endpoint: str | None
    remote_addr: str | None
    args: Any
    scheme: str

    @classmethod
    def carrying(cls, token: str, route: Route) -> TokenRequest:
        endpoint = route_endpoint(*route)
        stand_in = cls(
            headers=Headers({"X-API-Token": token}),
            path=f"/{route[0]}/{route[1]}",
            method="GET",
            endpoint=endpoint,
            remote_addr=request.remote_addr,
            args={},
            scheme=request.scheme,
        )
        info = route_info(stand_in)  # type: ignore[arg-type]
        if info is None:
            # No such API route in this app (its plugin is not installed): ask as a write of
            # an unknown path, which no scoped key is allowed by default.
            return cls(
                stand_in.headers,
                stand_in.path,
                "POST",
                None,
                request.remote_addr,
                {},
                request.scheme,
            )
        return cls(
            stand_in.headers,
            info.path,
            info.http_method,
            endpoint,
            request.remote_addr,
            {},
            request.scheme,
        )


async def authenticate_token(
    mp: MailProxy, token: str, route: Route = IDENTITY_ROUTE
) -> Principal | None:
    """The principal the kernel's auth chain gives ``token`` for ``route`` (admin token,
    tenant key...), or ``None`` when it is refused (unknown, revoked, expired, out of scope)."""
    if not token:
        return None
    try:
        return await mp.auth.authenticate(TokenRequest.carrying(token, route))  # type: ignore[arg-type]
    except AuthError:  # Forbidden included: a key without the scope the route needs
        return None


async def current_session(mp: MailProxy, store: SessionStore) -> Session | None:
    """The signed-in session of this request, its credential checked again; else ``None``."""
    session = store.get(request.cookies.get(COOKIE_NAME))
    if session is None:
        return None
    principal = await authenticate_token(mp, session.token)
    if principal is None or principal != session.principal:
        store.drop(session.id)
        return None
    return session


def set_session_cookie(response: Response, session: Session, max_age: int) -> None:
    """The session cookie: HttpOnly, SameSite=Strict, Secure over TLS, only under ``/ui/``."""
    response.set_cookie(
        COOKIE_NAME,
        session.id,
        max_age=max_age,
        path=UI_PATH,
        httponly=True,
        samesite="Strict",
        secure=request.scheme == "https",
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE_NAME, path=UI_PATH, httponly=True, samesite="Strict")


def new_login_csrf() -> str:
    return secrets.token_urlsafe(24)


def set_login_cookie(response: Response, value: str) -> None:
    response.set_cookie(
        LOGIN_COOKIE,
        value,
        max_age=3600,
        path=UI_PATH,
        httponly=True,
        samesite="Strict",
        secure=request.scheme == "https",
    )
