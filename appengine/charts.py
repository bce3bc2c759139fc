"""History charts as plain SVG geometry: the status page's template draws them, no script.

For one metric of one ring: the average as a line, the min-max range as a band behind it,
broken where slots are missing (the cluster did not report), on a time axis that ends
at ``now`` and spans the ring. Pure: numbers in, point lists out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from appengine.heartbeat_rings import Row, Tier

WIDTH = 640
HEIGHT = 170
LEFT = 48  # room for the y labels
BOTTOM = 22  # room for the x labels
TOP = 8
PLOT_W = WIDTH - LEFT - 8
PLOT_H = HEIGHT - TOP - BOTTOM


@dataclass(frozen=True)
class Segment:
    """One unbroken run of slots: the mean's polyline and the min-max band's polygon."""

    line: str
    band: str


@dataclass(frozen=True)
class Tick:
    x: float
    y: float
    label: str


@dataclass(frozen=True)
class Chart:
    """What the template needs to draw one metric's history."""

    metric: str
    title: str
    segments: tuple[Segment, ...]
    y_ticks: tuple[Tick, ...]
    x_ticks: tuple[Tick, ...]
    empty: bool
    latest: str  # the newest slot's average, as text ("" when empty)


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for factor in (1, 2, 2.5, 5, 10):
        if value <= factor * magnitude:
            return float(factor * magnitude)
    return float(10 * magnitude)


def _label(value: float) -> str:
    return f"{value:.0f}" if value == int(value) else f"{value:.1f}"


def chart(metric: str, title: str, index: int, rows: list[Row], tier: Tier, now: float) -> Chart:
    """The chart of metric ``index`` (of heartbeat_rings.METRICS) over ``tier``'s span."""
    start = now - tier.span
    top = _nice_max(max((row.high[index] for row in rows), default=0.0))

    def x(t: float) -> float:
        return round(LEFT + (t - start) / tier.span * PLOT_W, 1)

    def y(v: float) -> float:
        return round(TOP + PLOT_H - min(v, top) / top * PLOT_H, 1)

    runs: list[list[Row]] = []
    for row in rows:
        if runs and row.start - runs[-1][-1].start <= tier.step:
            runs[-1].append(row)
        else:
            runs.append([row])
    segments = []
    for run in runs:
        centres = [row.start + tier.step / 2 for row in run]
        means = [(x(t), y(row.mean[index])) for t, row in zip(centres, run, strict=True)]
        if len(means) == 1:  # a lone slot: as wide as its step, so it shows
            half = tier.step / 2
            means = [(x(centres[0] - half), means[0][1]), (x(centres[0] + half), means[0][1])]
            centres = [centres[0] - half, centres[0] + half]
            run = [run[0], run[0]]
        highs = [(x(t), y(row.high[index])) for t, row in zip(centres, run, strict=True)]
        lows = [(x(t), y(row.low[index])) for t, row in zip(centres, run, strict=True)]
        segments.append(
            Segment(
                line=" ".join(f"{px},{py}" for px, py in means),
                band=" ".join(f"{px},{py}" for px, py in highs + lows[::-1]),
            )
        )
    y_ticks = tuple(Tick(LEFT - 6, y(v), _label(v)) for v in (0.0, top / 2, top))
    x_ticks = tuple(
        Tick(x(t), HEIGHT - 6, _time_label(t, tier)) for t in (start, start + tier.span / 2, now)
    )
    latest = _label(round(rows[-1].mean[index], 1)) if rows else ""
    return Chart(metric, title, tuple(segments), y_ticks, x_ticks, not rows, latest)


def _time_label(t: float, tier: Tier) -> str:
    moment = datetime.fromtimestamp(t, UTC)
    return moment.strftime("%H:%M" if tier.span <= 86400 else "%m-%d %H:%M")
