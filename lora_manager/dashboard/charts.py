"""Chart geometry for the dashboard's server-rendered SVG: numbers and labels only, no markup.

The markup is in ``templates/lora_manager/dashboard/_stacked_days.html`` and ``_bars.html`` (Django
escapes every label there). Colours come from CSS classes (``chart-*`` in static/css/app.css) that use
the theme's variables, so the charts follow the light and dark themes; the CSP forbids inline styles,
so geometry travels as SVG attributes, never ``style=``. Each bar has a ``<title>`` for screen readers.
Coordinates are rounded to one decimal here so the templates print them as they are.
"""

from __future__ import annotations

from typing import Any

WIDTH, HEIGHT = 640, 220
PAD_LEFT, PAD_BOTTOM, PAD_TOP = 34, 24, 8
BAR_ROW, BAR_LABEL_WIDTH, BAR_WIDTH, BAR_HEIGHT = 26, 90, 300, 18

SERIES = (("succeeded", "Succeeded"), ("failed", "Failed"), ("cancelled", "Cancelled"), ("active", "Queued or running"))


def _nice_max(value: int) -> int:
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000):
        if value <= step * 4:
            return step * 4
    return value


def _r(value: float) -> float:
    return round(value, 1)


def stacked_days(per_day: list[dict[str, Any]], chart_id: str = "chart-generations") -> dict[str, Any]:
    """Generations per day as stacked bars (one colour per outcome), oldest day on the left.

    Returns the chart's size, five horizontal grid lines with their values, one list of segments per
    day (bottom-up, empty outcomes left out) and a date label under every seventh day ending today.
    """
    peak = _nice_max(max([row["total"] for row in per_day] + [1]))
    plot_w, plot_h = WIDTH - PAD_LEFT, HEIGHT - PAD_BOTTOM - PAD_TOP
    slot = plot_w / max(len(per_day), 1)
    bar = max(slot * 0.7, 1)
    ticks = [{"value": peak * i // 4, "y": _r(PAD_TOP + plot_h - plot_h * i / 4)} for i in range(5)]
    for tick in ticks:
        tick["label_y"] = _r(tick["y"] + 4)
    bars, labels = [], []
    for index, row in enumerate(per_day):
        x = PAD_LEFT + index * slot + (slot - bar) / 2
        bottom = PAD_TOP + plot_h
        for key, label in SERIES:
            count = row.get(key, 0)
            if not count:
                continue
            height = plot_h * count / peak
            bottom -= height
            bars.append(
                {
                    "series": key,
                    "date": row["date"],
                    "x": _r(x),
                    "y": _r(bottom),
                    "width": _r(bar),
                    "height": _r(height),
                    "title": f"{row['date']}: {count} {label.lower()}",
                }
            )
        if index % 7 == (len(per_day) - 1) % 7:
            anchor = "end" if index == len(per_day) - 1 else "middle"
            labels.append({"x": _r(x + bar), "y": HEIGHT - 6, "anchor": anchor, "text": row["date"][5:]})
    return {
        "id": chart_id,
        "width": WIDTH,
        "height": HEIGHT,
        "title": f"Generations per day, last {len(per_day)} days, by outcome",
        "grid_x1": PAD_LEFT,
        "axis_x": PAD_LEFT - 4,
        "ticks": ticks,
        "bars": bars,
        "labels": labels,
    }


def bars(
    rows: list[dict[str, Any]], chart_id: str, label_key: str = "label", value_key: str = "count"
) -> dict[str, Any]:
    """Horizontal bars (a breakdown such as adapters per base model), in the order given (largest first)."""
    peak = max([row[value_key] for row in rows] + [1])
    items = []
    for index, row in enumerate(rows):
        y = index * BAR_ROW
        length = (BAR_WIDTH - BAR_LABEL_WIDTH - 50) * row[value_key] / peak
        items.append(
            {
                "label": str(row[label_key]),
                "value": row[value_key],
                "label_x": BAR_LABEL_WIDTH - 6,
                "text_y": y + 18,
                "x": BAR_LABEL_WIDTH,
                "y": y + 4,
                "width": _r(max(length, 1)),
                "height": BAR_HEIGHT,
                "value_x": _r(BAR_LABEL_WIDTH + length + 6),
            }
        )
    return {
        "id": chart_id,
        "width": BAR_WIDTH,
        "height": max(len(rows), 1) * BAR_ROW,
        "title": chart_id.replace("chart-", "").replace("-", " "),
        "rows": items,
    }
