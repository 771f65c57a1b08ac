"""Small display helpers of the generation pages."""

from __future__ import annotations

from django import template

from generation.composer import format_weight

register = template.Library()


@register.filter
def eta(seconds: float | None) -> str:
    """12 s, 2 min 05 s; "" when unknown."""
    if seconds is None:
        return ""
    seconds = max(0, round(float(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, rest = divmod(seconds, 60)
    return f"{minutes} min {rest:02d} s"


@register.filter
def weight(value: float | None) -> str:
    return "" if value is None else format_weight(float(value))


@register.filter
def snapshot(job) -> dict:
    """The progress dict of a job row (progress.job_snapshot), for templates that list several jobs."""
    from generation.progress import job_snapshot

    return job_snapshot(job)


@register.filter
def percent(value: float | None) -> str:
    return "–" if value is None else f"{round(value * 100)}%"
