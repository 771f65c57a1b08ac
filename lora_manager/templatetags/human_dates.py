"""One way every page shows a moment: "3 minutes ago" (or "in 2 hours"), the exact date on hover.

Accepts datetimes and the ISO strings that JSON-backed status dicts carry, so no page shows a raw
``2026-07-23T11:45:01.123456+00:00`` again.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django import template
from django.contrib.humanize.templatetags.humanize import naturaltime
from django.utils import timezone
from django.utils.dateformat import format as date_format
from django.utils.html import format_html

register = template.Library()


def as_datetime(value) -> datetime | None:
    """A datetime from a datetime or an ISO 8601 string (naive values are taken as UTC); None otherwise."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    if timezone.is_naive(value):
        value = value.replace(tzinfo=UTC)
    return value


@register.filter(name="when")
def when(value, fallback: str = "–") -> str:
    """``{{ value|when }}`` → ``<time datetime="…" title="6 Dec 2026, 18:21">3 minutes ago</time>``."""
    moment = as_datetime(value)
    if moment is None:
        return fallback if value in (None, "") else str(value)
    local = timezone.localtime(moment)
    return format_html(
        '<time datetime="{}" title="{}">{}</time>',
        moment.isoformat(),
        date_format(local, "j M Y, H:i T"),
        naturaltime(moment),
    )
