"""Server-rendered SVG charts for the dashboard: no JavaScript, no vendored chart library.

Colours come from CSS classes (``chart-*`` in static/css/app.css) that use the theme's variables, so
the charts follow the light and dark themes; the CSP forbids inline styles, so no ``style=`` here.
Each chart has a ``<title>`` per bar and a text summary for screen readers.
"""

from __future__ import annotations

from typing import Any

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 640, 220
PAD_LEFT, PAD_BOTTOM, PAD_TOP = 34, 24, 8

SERIES = (("succeeded", "Succeeded"), ("failed", "Failed"), ("cancelled", "Cancelled"), ("active", "Queued or running"))


def _nice_max(value: int) -> int:
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000):
        if value <= step * 4:
            return step * 4
    return value


def stacked_days(per_day: list[dict[str, Any]], chart_id: str = "chart-generations") -> SafeString:
    """Generations per day as stacked bars (one colour per outcome), oldest day on the left."""
    peak = _nice_max(max([row["total"] for row in per_day] + [1]))
    plot_w, plot_h = WIDTH - PAD_LEFT, HEIGHT - PAD_BOTTOM - PAD_TOP
    slot = plot_w / max(len(per_day), 1)
    bar = max(slot * 0.7, 1)
    parts = [
        f'<svg id="{chart_id}" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{chart_id}-title" preserveAspectRatio="none">',
        f'<title id="{chart_id}-title">Generations per day, last {len(per_day)} days, by outcome</title>',
    ]
    for i in range(5):
        value = peak * i // 4
        y = PAD_TOP + plot_h - plot_h * i / 4
        parts.append(f'<line class="chart-grid" x1="{PAD_LEFT}" x2="{WIDTH}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="chart-axis" x="{PAD_LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">{value}</text>')
    for index, row in enumerate(per_day):
        x = PAD_LEFT + index * slot + (slot - bar) / 2
        bottom = PAD_TOP + plot_h
        for key, label in SERIES:
            count = row.get(key, 0)
            if not count:
                continue
            height = plot_h * count / peak
            bottom -= height
            parts.append(
                f'<rect class="chart-bar chart-{key}" data-day="{escape(row["date"])}" x="{x:.1f}" y="{bottom:.1f}" '
                f'width="{bar:.1f}" height="{height:.1f}"><title>{escape(row["date"])}: {count} {label.lower()}'
                "</title></rect>"
            )
        if index % 7 == (len(per_day) - 1) % 7:
            anchor = "end" if index == len(per_day) - 1 else "middle"
            parts.append(
                f'<text class="chart-axis" x="{x + bar:.1f}" y="{HEIGHT - 6}" text-anchor="{anchor}">'
                f"{escape(row['date'][5:])}</text>"
            )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every value above is a number or escaped


def bars(rows: list[dict[str, Any]], chart_id: str, label_key: str = "label", value_key: str = "count") -> SafeString:
    """Horizontal bars (a breakdown such as adapters per base model), largest first."""
    row_h, label_w, width = 26, 90, 300
    height = max(len(rows), 1) * row_h
    peak = max([row[value_key] for row in rows] + [1])
    parts = [
        f'<svg id="{chart_id}" class="chart chart-hbars" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="{chart_id}-title">',
        f'<title id="{chart_id}-title">{escape(chart_id.replace("chart-", "").replace("-", " "))}</title>',
    ]
    for index, row in enumerate(rows):
        y = index * row_h
        length = (width - label_w - 50) * row[value_key] / peak
        label, value = escape(str(row[label_key])), row[value_key]
        parts.append(f'<text class="chart-label" x="{label_w - 6}" y="{y + 18}" text-anchor="end">{label}</text>')
        parts.append(
            f'<rect class="chart-bar chart-accent" x="{label_w}" y="{y + 4}" width="{max(length, 1):.1f}" height="18">'
            f"<title>{label}: {value}</title></rect>"
        )
        parts.append(f'<text class="chart-value" x="{label_w + length + 6:.1f}" y="{y + 18}">{value}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - labels escaped, the rest numbers
