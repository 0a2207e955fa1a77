"""Server-side SVG charts for the admin dashboard (no JavaScript, no CDN)."""

from __future__ import annotations

import datetime

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

COLORS = ("#1565c0", "#ef6c00", "#c62828", "#2e7d32")


def line_chart(
    series: dict[str, list[tuple[datetime.datetime, float]]],
    *,
    start: datetime.datetime,
    end: datetime.datetime,
    budget: float | None = None,
    unit: str = "ms",
    width: int = 720,
    height: int = 220,
) -> SafeString:
    """Draw each series as a polyline over [start, end], with a dashed budget line and min/max labels."""
    left, right, top, bottom = 48, 8, 10, 24
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for points in series.values() for _, v in points] + ([budget] if budget is not None else [])
    ceiling = max(values, default=1.0) * 1.1 or 1.0
    span = max((end - start).total_seconds(), 1.0)

    def x(at: datetime.datetime) -> float:
        return left + plot_w * min(max((at - start).total_seconds() / span, 0.0), 1.0)

    def y(value: float) -> float:
        return top + plot_h * (1 - value / ceiling)

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
        format_html('<text x="{}" y="{}" fill="#757575" font-size="12">no samples yet</text>', left + 10, height / 2)
        if not any(series.values())
        else ""
    )
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" '
        'aria-label="latency chart"><rect x="{l}" y="{t}" width="{pw}" height="{ph}" fill="#fafafa" '
        'stroke="#ddd"/>{lines}{budget}{legend}{empty}'
        '<text x="2" y="{t2}" font-size="10" fill="#555">{ceiling} {unit}</text>'
        '<text x="2" y="{b}" font-size="10" fill="#555">0</text>'
        '<text x="{l}" y="{h2}" font-size="10" fill="#555">{start}</text>'
        '<text x="{r}" y="{h2}" font-size="10" fill="#555" text-anchor="end">{end}</text></svg>',
        w=width,
        h=height,
        l=left,
        t=top,
        pw=plot_w,
        ph=plot_h,
        lines=lines,
        budget=budget_line,
        legend=legend,
        empty=empty,
        t2=top + 8,
        ceiling=f"{ceiling:.0f}",
        unit=unit,
        b=top + plot_h,
        h2=height - 6,
        r=width - right,
        start=f"{start:%H:%M}",
        end=f"{end:%H:%M} UTC",
    )
