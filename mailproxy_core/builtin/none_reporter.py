"""The ``none`` reporter: a tenant that wants no delivery reports (``reporter: "none"``).

Its events are acknowledged as soon as the reporting loop hands them over, so they count as
reported: retention and ``messages/cleanup`` remove finished messages as usual, and nothing is
sent anywhere or logged as a failure.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..models import DeliveryEvent, ReportAck, Tenant
from ..plugins.markers import hookimpl
from ..specs import ReporterSpec


class NoneReporter:
    """Acknowledges every report without delivering it."""

    def __init__(self, mp: object = None) -> None:
        self.mp = mp

    async def report(self, tenant: Tenant, events: Sequence[DeliveryEvent]) -> ReportAck:
        """Accept ``events``: the tenant asked for no reports."""
        return ReportAck(ok=True, detail="reporter 'none': events are not delivered")


@hookimpl
def mailproxy_register_reporters() -> list[ReporterSpec]:
    return [ReporterSpec("none", NoneReporter)]
