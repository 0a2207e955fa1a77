"""Server-side SVG charts for the admin dashboard (no JavaScript, no CDN)."""

from __future__ import annotations

import datetime

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

COLORS = ("#1565c0", "#ef6c00", "#c62828", "#2e7d32")


def _time_ticks(start: datetime.datetime, end: datetime.datetime, count: int = 6) -> list[datetime.datetime]:
    """Return about `count` round times (1, 2, 5, 10, 15, 30 or 60 minutes apart) within [start, end]."""
    span_minutes = max((end - start).total_seconds() / 60, 1.0)
    step = next((m for m in (1, 2, 5, 10, 15, 30) if span_minutes / m <= count), 60)
    first = start.replace(second=0, microsecond=0)
    first += datetime.timedelta(minutes=(-first.minute) % step)
    ticks = []
    while first <= end:
        ticks.append(first)
        first += datetime.timedelta(minutes=step)
    return ticks


def line_chart(
    series: dict[str, list[tuple[datetime.datetime, float]]],
    *,
    start: datetime.datetime,
    end: datetime.datetime,
    budget: float | None = None,
    unit: str = "ms",
    width: int = 720,
    height: int = 220,
    empty_text: str = "no samples yet",
) -> SafeString:
    """Draw each series as a polyline over [start, end] on a grid, with a dashed budget line and axis labels."""
    left, right, top, bottom = 48, 8, 10, 24
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for points in series.values() for _, v in points] + ([budget] if budget is not None else [])
    ceiling = max(values, default=1.0) * 1.1 or 1.0
    span = max((end - start).total_seconds(), 1.0)

    def x(at: datetime.datetime) -> float:
        return left + plot_w * min(max((at - start).total_seconds() / span, 0.0), 1.0)

    def y(value: float) -> float:
        return top + plot_h * (1 - value / ceiling)

    grid = format_html_join(
        "",
        '<line x1="{0}" x2="{0}" y1="{1}" y2="{2}" stroke="#e6e6e6"/>'
        '<text x="{0}" y="{3}" font-size="10" fill="#555" text-anchor="middle">{4}</text>',
        ((f"{x(at):.1f}", top, top + plot_h, height - 6, f"{at:%H:%M}") for at in _time_ticks(start, end)),
    ) + format_html_join(
        "",
        '<line x1="{0}" x2="{1}" y1="{2}" y2="{2}" stroke="#e6e6e6"/>'
        '<text x="{3}" y="{4}" font-size="10" fill="#555" text-anchor="end">{5}</text>',
        (
            (left, width - right, f"{y(level):.1f}", left - 4, f"{y(level) + 3:.1f}", f"{level:.0f}")
            for level in (ceiling * i / 4 for i in range(5))
        ),
    )
    lines = format_html_join(
        "",
        '<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}"><title>{}</title></polyline>',
        (
            (COLORS[i % len(COLORS)], " ".join(f"{x(at):.1f},{y(v):.1f}" for at, v in points), name)
            for i, (name, points) in enumerate(series.items())
            if points
        ),
    )
    legend = format_html_join(
        "",
        '<text x="{}" y="{}" fill="{}" font-size="11">{}</text>',
        ((left + 8 + 70 * i, top + 12, COLORS[i % len(COLORS)], name) for i, name in enumerate(series)),
    )
    budget_line = (
        format_html(
            '<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="#c62828" stroke-dasharray="4 3"/>'
            '<text x="{}" y="{}" fill="#c62828" font-size="10">budget {} {}</text>',
            left,
            width - right,
            f"{y(budget):.1f}",
            f"{y(budget):.1f}",
            width - right - 110,
            f"{y(budget) - 3:.1f}",
            budget,
            unit,
        )
        if budget is not None
        else ""
    )
    empty = (
        format_html('<text x="{}" y="{}" fill="#757575" font-size="12">{}</text>', left + 10, height / 2, empty_text)
        if not any(series.values())
        else ""
    )
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" '
        'aria-label="latency chart"><rect x="{l}" y="{t}" width="{pw}" height="{ph}" fill="#fafafa" '
        'stroke="#ddd"/>{grid}{lines}{budget}{legend}{empty}'
        '<text x="2" y="{t2}" font-size="10" fill="#555">{unit}</text>'
        '<text x="{r}" y="{t2}" font-size="10" fill="#555" text-anchor="end">UTC</text></svg>',
        w=width,
        h=height,
        l=left,
        t=top,
        pw=plot_w,
        ph=plot_h,
        grid=grid,
        lines=lines,
        budget=budget_line,
        legend=legend,
        empty=empty,
        t2=top + 8,
        unit=unit,
        r=width - right,
    )
