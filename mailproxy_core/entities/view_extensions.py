"""Extra fields plugins add to the API objects of tenants and accounts (``ViewExtensionSpec``).

Every response that returns tenant objects (``tenants/add|get|list|update``) or account objects
(``accounts/add|get|list``) passes its objects through :func:`extend_views` once: each registered
extension of the entity is awaited with the whole list and answers one mapping of extra fields
per object. The kernel's own fields always win over an extension's.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ..errors import PluginError

if TYPE_CHECKING:
    from ..kernel import MailProxy
    from ..specs import ViewEntity

log = logging.getLogger(__name__)

View = TypeVar("View", bound=Mapping[str, Any])
"""An API object (a ``TypedDict`` such as ``TenantObject``), extended in place."""


async def extend_views(mp: MailProxy, entity: ViewEntity, views: list[View]) -> list[View]:
    """Add every registered extension's fields of ``entity`` to ``views`` (in place); return them.

    Raises:
        PluginError: an extension answered a different number of rows, or not mappings.
    """
    if not views:
        return views
    table = mp.registry.view_extensions
    for name in table.names():
        spec = table[name]
        if spec.entity != entity:
            continue
        extra = list(await spec.extend(mp, [dict(view) for view in views]))
        if len(extra) != len(views):
            raise PluginError(
                f"view extension {name!r} of plugin {table.plugin_of(name)!r} returned "
                f"{len(extra)} rows for {len(views)} {entity}"
            )
        for shown, fields in zip(views, extra, strict=True):
            view = cast(dict[str, Any], shown)
            if not isinstance(fields, Mapping):
                raise PluginError(
                    f"view extension {name!r} returned {type(fields).__name__} for a row; "
                    "expected a mapping of extra fields"
                )
            for key, value in fields.items():
                if key in view:
                    log.warning("view extension %r cannot replace the field %r", name, key)
                    continue
                view[key] = value
    return views


async def extend_view(mp: MailProxy, entity: ViewEntity, view: View) -> View:
    """:func:`extend_views` for one object."""
    return (await extend_views(mp, entity, [view]))[0]
