"""The ``core`` built-in plugin: core schema migrations and core API entities."""

from __future__ import annotations

from ..db.migrate import core_migrations
from ..dispatch.dispatcher import run_dispatcher
from ..dispatch.receipts import run_receipts
from ..dispatch.reporting import run_reporting
from ..dispatch.retention import run_retention
from ..entities.accounts import AccountsEndpoint
from ..entities.command_log import CommandLogEndpoint
from ..entities.instance import InstanceEndpoint
from ..entities.instance_sync import InstanceSyncEndpoint
from ..entities.messages import MessagesEndpoint
from ..entities.storages import StoragesEndpoint
from ..entities.tenants import TenantsEndpoint
from ..plugins.markers import hookimpl
from ..specs import BackgroundTaskSpec, EndpointSpec, MigrationSpec


@hookimpl
def mailproxy_register_migrations() -> list[MigrationSpec]:
    return core_migrations()


@hookimpl
def mailproxy_register_endpoints() -> list[EndpointSpec]:
    return [
        EndpointSpec("instance", InstanceEndpoint),
        EndpointSpec("instance", InstanceSyncEndpoint),
        EndpointSpec("tenants", TenantsEndpoint),
        EndpointSpec("accounts", AccountsEndpoint),
        EndpointSpec("messages", MessagesEndpoint),
        EndpointSpec("storages", StoragesEndpoint),
        EndpointSpec("command_log", CommandLogEndpoint),
    ]


@hookimpl
def mailproxy_register_background_tasks() -> list[BackgroundTaskSpec]:
    return [
        BackgroundTaskSpec("dispatcher", run_dispatcher, dispatch_only=True),
        BackgroundTaskSpec("reporting", run_reporting),
        BackgroundTaskSpec("report_retention", run_retention),
        BackgroundTaskSpec("receipts", run_receipts),
    ]
