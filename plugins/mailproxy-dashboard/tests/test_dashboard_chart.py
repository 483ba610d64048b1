"""The Overview's per-minute chart, from message objects as the API returns them."""

from __future__ import annotations

import time

from mailproxy_dashboard.chart import minute_chart


def utc(seconds: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))


def test_counts_land_in_the_minute_of_their_last_change() -> None:
    now = 1_800_000_000
    messages = [
        {"status": "sent", "smtp_ts": now - 30, "updated_at": utc(now - 30)},
        {"status": "sent", "smtp_ts": now - 45, "updated_at": utc(now)},
        {"status": "error", "updated_at": utc(now - 59 * 60 - 10)},
        {"status": "deferred", "updated_at": utc(now - 120)},
        {"status": "pending", "updated_at": utc(now)},
        {"status": "sent", "smtp_ts": now - 2 * 3600, "updated_at": utc(now - 2 * 3600)},
    ]
    chart = minute_chart(messages, now)
    assert chart.counts["sent"][59] == 2 and sum(chart.counts["sent"]) == 2
    assert chart.counts["error"][0] == 1 and sum(chart.counts["error"]) == 1
    assert chart.counts["deferred"][58] == 1
    assert chart.total == 4
    assert chart.svg.startswith("<svg") and "2 / min" in chart.svg


def test_an_empty_hour_draws_nothing() -> None:
    assert minute_chart([], 1_800_000_000).total == 0
