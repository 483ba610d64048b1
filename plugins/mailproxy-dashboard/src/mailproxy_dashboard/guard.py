"""Sign-in state of a dashboard request: session cookie, re-authentication, CSRF check."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from quart import Response, request
from werkzeug.datastructures import Headers

from mailproxy_core import AuthError, MailProxy, Principal

from .sessions import COOKIE_NAME, Session, SessionStore

LOGIN_COOKIE = "mailproxy_ui_login"
"""Double-submit CSRF cookie of the sign-in form (there is no session yet to hold the token)."""

UI_PATH = "/ui/"


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """What an auth backend reads of a request, carrying a token typed into the sign-in form.

    Backends read the credential with ``extract_token(request)`` (its headers); the path, method
    and client address are those of the real sign-in request.
    """

    headers: Headers
    path: str
    method: str
    remote_addr: str | None
    args: Any
    scheme: str

    @classmethod
    def carrying(cls, token: str) -> TokenRequest:
        return cls(
            headers=Headers({"X-API-Token": token}),
            path=request.path,
            method=request.method,
            remote_addr=request.remote_addr,
            args=request.args,
            scheme=request.scheme,
        )


async def authenticate_token(mp: MailProxy, token: str) -> Principal | None:
    """The principal the kernel's auth chain gives ``token`` (admin token, tenant key...)."""
    if not token:
        return None
    try:
        return await mp.auth.authenticate(TokenRequest.carrying(token))  # type: ignore[arg-type]
    except AuthError:
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
