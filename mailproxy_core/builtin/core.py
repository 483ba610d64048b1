"""The ``core`` built-in plugin: core schema migrations and core API entities."""

from __future__ import annotations

from ..db.migrate import core_migrations
from ..entities.instance import InstanceEndpoint
from ..plugins.markers import hookimpl
from ..specs import EndpointSpec, MigrationSpec


@hookimpl
def mailproxy_register_migrations() -> list[MigrationSpec]:
    return core_migrations()


@hookimpl
def mailproxy_register_endpoints() -> list[EndpointSpec]:
    return [EndpointSpec("instance", InstanceEndpoint)]
