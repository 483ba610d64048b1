"""The Overview's per-minute chart: sent / error / deferred over the last hour, as inline SVG."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

MINUTES = 60
SERIES = (("sent", "#1a7f37"), ("error", "#cf222e"), ("deferred", "#9a6700"))
WIDTH, HEIGHT, PAD = 600, 140, 20


@dataclass(frozen=True, slots=True)
class Chart:
    """Per-minute counts and their SVG drawing."""

    counts: dict[str, list[int]]
    svg: str

    @property
    def total(self) -> int:
        return sum(sum(values) for values in self.counts.values())


def _when(message: Mapping[str, Any], status: str) -> int | None:
    if status == "sent" and message.get("smtp_ts"):
        return int(message["smtp_ts"])
    text = message.get("updated_at")
    if not text:
        return None
    # The API writes UTC as "YYYY-MM-DD HH:MM:SS", without a zone.
    moment = datetime.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return int(moment.timestamp())


def minute_chart(messages: Iterable[Mapping[str, Any]], now: int) -> Chart:
    """Count ``messages`` by their status and the minute of their last change, last hour."""
    counts = {name: [0] * MINUTES for name, _ in SERIES}
    start = now - MINUTES * 60
    for message in messages:
        status = str(message.get("status"))
        if status not in counts:
            continue
        when = _when(message, status)
        if when is None or when < start or when > now:
            continue
        counts[status][min(MINUTES - 1, (when - start) // 60)] += 1
    return Chart(counts, _svg(counts))


def _svg(counts: dict[str, list[int]]) -> str:
    peak = max([1, *(max(values) for values in counts.values())])
    step = (WIDTH - 2 * PAD) / (MINUTES - 1)
    lines = []
    for name, colour in SERIES:
        points = " ".join(
            f"{PAD + i * step:.1f},{HEIGHT - PAD - value * (HEIGHT - 2 * PAD) / peak:.1f}"
            for i, value in enumerate(counts[name])
        )
        lines.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}">'
            f"<title>{name}</title></polyline>"
        )
    axis = (
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" '
        'stroke="#8c959f"/>'
        f'<text x="{PAD}" y="{HEIGHT - 4}" font-size="10">-60 min</text>'
        f'<text x="{WIDTH - PAD - 20}" y="{HEIGHT - 4}" font-size="10">now</text>'
        f'<text x="{PAD}" y="{PAD - 6}" font-size="10">{peak} / min</text>'
    )
    return (
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="chart-title" '
        f'class="chart"><title id="chart-title">Messages per minute, last hour</title>'
        f"{axis}{''.join(lines)}</svg>"
    )
