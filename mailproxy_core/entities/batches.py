"""Batch suspension of a tenant (docs/api.md ``tenants/suspend_batch`` and ``instance/suspend``).

A tenant's ``suspended_batches`` is a sorted list of batch codes, or ``["*"]`` for everything
(messages without a batch code included). The dispatcher does not claim messages of suspended
batches; they stay queued and are sent once their batch is activated again.

Rules (those of the reference):

* suspend without a batch code (or with ``"*"``) suspends everything: ``["*"]``;
* suspending one batch while everything is suspended changes nothing;
* activate without a batch code (or with ``"*"``) clears every suspension;
* activating one batch while everything is suspended is refused (409): the remaining batches
  would otherwise have to be guessed; activate everything, then suspend what must stay so.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import Conflict, NotFound
from .fields import FieldErrors

if TYPE_CHECKING:
    from ..kernel import MailProxy

ALL_BATCHES = "*"
"""The suspension entry meaning every batch, including messages without a batch code."""


def _check_batch_code(batch_code: str | None) -> str | None:
    """``None`` for "every batch"; 422 for an empty code (a likely client bug, not "all")."""
    if batch_code is None or batch_code == ALL_BATCHES:
        return None
    if not batch_code.strip():
        errors = FieldErrors()
        errors.add(
            "batch_code",
            "must not be empty; omit it to act on every batch of the tenant",
            "string_too_short",
        )
        errors.raise_if_any()
    return batch_code


def suspended_after_suspend(current: Sequence[str], batch_code: str | None) -> list[str]:
    """The suspended batches after suspending ``batch_code`` (``None`` = all)."""
    if batch_code is None or ALL_BATCHES in current:
        return [ALL_BATCHES]
    return sorted({*current, batch_code})


def suspended_after_activate(
    tenant_id: str, current: Sequence[str], batch_code: str | None
) -> list[str]:
    """The suspended batches after activating ``batch_code`` (``None`` = all).

    Raises:
        Conflict: one batch is activated while every batch is suspended.
    """
    if batch_code is None:
        return []
    if ALL_BATCHES in current:
        raise Conflict(
            f"every batch of tenant '{tenant_id}' is suspended ('*'): batch '{batch_code}' "
            "cannot be activated alone; activate without batch_code, then suspend the batches "
            "that must stay suspended"
        )
    return sorted(set(current) - {batch_code})


async def suspend_batch(mp: MailProxy, tenant_id: str, batch_code: str | None) -> dict[str, Any]:
    """Suspend one batch of the tenant, or all of it; ``{"ok", "tenant_id", "suspended_batches"}``.

    Raises:
        NotFound: unknown tenant.
        InvalidInput: an empty ``batch_code``.
    """
    code = _check_batch_code(batch_code)
    batches = await mp.repos.tenants.change_suspended_batches(
        tenant_id, lambda current: suspended_after_suspend(current, code)
    )
    mp.directory_changed()
    return {"ok": True, "tenant_id": tenant_id, "suspended_batches": batches}


async def activate_batch(mp: MailProxy, tenant_id: str, batch_code: str | None) -> dict[str, Any]:
    """Resume one batch of the tenant, or all of it, and wake the dispatcher.

    Returns ``{"ok", "tenant_id", "suspended_batches"}`` (what is still suspended).

    Raises:
        NotFound: unknown tenant.
        Conflict: one batch while every batch is suspended (``"*"``).
        InvalidInput: an empty ``batch_code``.
    """
    code = _check_batch_code(batch_code)
    batches = await mp.repos.tenants.change_suspended_batches(
        tenant_id, lambda current: suspended_after_activate(tenant_id, current, code)
    )
    mp.directory_changed()
    return {"ok": True, "tenant_id": tenant_id, "suspended_batches": batches}


async def get_suspended_batches(mp: MailProxy, tenant_id: str) -> dict[str, Any]:
    """``{"ok", "tenant_id", "suspended_batches"}`` of the tenant; ``NotFound`` if unknown."""
    row = await mp.repos.tenants.get(tenant_id)
    if row is None:
        raise NotFound(f"tenant '{tenant_id}' not found")
    return {"ok": True, "tenant_id": tenant_id, "suspended_batches": row["suspended_batches"]}
