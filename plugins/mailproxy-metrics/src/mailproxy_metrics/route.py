"""``GET /metrics``: the app's registry in the Prometheus text format 0.0.4 (public)."""

from __future__ import annotations

from quart import Blueprint, Response

from mailproxy_core import current_kernel

from .app_metrics import metrics_for

METRICS_PATH = "/metrics"

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""What ``generate_latest`` writes. Spelled out because prometheus_client's ``CONTENT_TYPE_LATEST``
names text format 1.0.0 in recent releases, and older ones lack ``CONTENT_TYPE_PLAIN_0_0_4``."""


def build_blueprint() -> Blueprint:
    """A new ``/metrics`` blueprint: the registration hook runs once per app, each gets its own."""
    blueprint = Blueprint("metrics", __name__)

    @blueprint.get(METRICS_PATH)
    async def metrics() -> Response:
        """Every metric of this app; reads the queue statistics and, when stale, tenant names."""
        mp = current_kernel()
        body = await metrics_for(mp).scrape(mp)
        return Response(body, status=200, content_type=CONTENT_TYPE)

    return blueprint
