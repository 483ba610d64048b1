"""The installed ``metrics`` plugin: discovery, settings, the public route, the queue gauges."""

from __future__ import annotations

import asyncio
from pathlib import Path

import prometheus_client
import pytest

from mailproxy_core import ConfigurationError, Settings
from mailproxy_core.kernel import build_kernel
from mailproxy_metrics import MetricsSettings
from mailproxy_metrics.durations import DurationHistogram

REFERENCE_COUNTERS = ("gmp_sent", "gmp_errors", "gmp_deferred", "gmp_rate_limited")
STATUSES = ("pending", "deferred", "sending", "sent", "error")


def test_metrics_is_installed(tmp_path: Path) -> None:
    mp = build_kernel(Settings.from_values(db=str(tmp_path / "mp.db")))
    info = {p.name: p for p in mp.plugins}["metrics"]
    assert info.status == "loaded"
    assert info.distribution == "mailproxy-metrics"
    assert "metrics" in mp.registry.routes
    assert mp.registry.routes["metrics"].public_paths == ("/metrics",)
    assert isinstance(mp.plugin_settings("metrics"), MetricsSettings)


@pytest.mark.parametrize(
    ("section", "complaint"),
    [
        ({"duration_buckets": [1.0, 0.5]}, "strictly increasing"),
        ({"duration_buckets": [0.0, 1.0]}, "positive"),
        ({"tenant_name_ttl": 0}, "tenant_name_ttl"),
    ],
)
def test_metrics_invalid_settings_stop_startup(
    tmp_path: Path, section: dict[str, object], complaint: str
) -> None:
    settings = Settings.from_values(
        db=str(tmp_path / "mp.db"), plugin_sections={"metrics": section}
    )
    with pytest.raises(ConfigurationError, match=complaint):
        build_kernel(settings)


async def test_metrics_answers_without_a_token_in_text_format_0_0_4(mp_app) -> None:
    response = await mp_app.test_client().get("/metrics")  # no X-API-Token
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = await response.get_data(as_text=True)
    for name in REFERENCE_COUNTERS:
        assert f"# TYPE {name}_total counter" in text
    assert "# TYPE gmp_send_duration_seconds histogram" in text
    assert "# TYPE gmp_pending_messages gauge" in text
    assert "_created" not in text


async def test_metrics_queue_gauges_on_an_empty_queue(mp_app, scrape) -> None:
    samples = await scrape(mp_app)
    assert samples[("gmp_pending_messages", frozenset())] == 0
    assert samples[("gmp_queue_oldest_age_seconds", frozenset())] == 0
    for status in STATUSES:
        assert samples[("gmp_messages", frozenset({("status", status)}))] == 0


async def test_metrics_never_use_the_global_registry(mp_app, scrape) -> None:
    await scrape(mp_app)
    exposed = prometheus_client.generate_latest(prometheus_client.REGISTRY).decode()
    assert "gmp_" not in exposed


async def test_metrics_without_a_database_still_serve_the_counters(
    mp_app, mp_kernel, scrape, monkeypatch, caplog
) -> None:
    async def unavailable() -> dict[str, object]:
        raise ConnectionError("database is down")

    monkeypatch.setattr(mp_kernel, "queue_stats", unavailable)
    samples = await scrape(mp_app)
    assert ("gmp_pending_messages", frozenset()) not in samples
    assert "could not read the queue" in caplog.text
    response = await mp_app.test_client().get("/metrics")
    assert "# TYPE gmp_sent_total counter" in await response.get_data(as_text=True)


async def test_metrics_concurrent_scrapes_each_answer(mp_app, scrape) -> None:
    # Scrapes refresh shared caches (tenant names, queue snapshot); concurrent ones must not trip.
    results = await asyncio.gather(*(scrape(mp_app) for _ in range(10)))
    assert all(("gmp_pending_messages", frozenset()) in r for r in results)


def test_metrics_duration_buckets_are_cumulative_and_inclusive() -> None:
    histogram = DurationHistogram([0.1, 1.0])
    for seconds in (0.05, 0.1, 0.5, 3.0):
        histogram.observe("acme", "main", "sent", seconds)
    ((key, buckets, total),) = histogram.series()
    assert key == ("acme", "main", "sent")
    assert buckets == [("0.1", 2), ("1.0", 3), ("+Inf", 4)]  # 0.1 falls in le="0.1"
    assert total == pytest.approx(3.65)
