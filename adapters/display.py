"""How catalog values read on every page: one function per kind of value, used by templates (through the
``catalog_format`` tags), the admin and the dashboard alike, so "SD 1.x" never reads "SD1" elsewhere."""

from __future__ import annotations

from datetime import date, datetime

from django.utils import timezone
from django.utils.dateformat import format as format_date

from adapters.models import BaseModel, NetworkType

_BASE_LABELS = dict(BaseModel.choices)
_TYPE_LABELS = dict(NetworkType.choices)


def base_model_label(value: str | None) -> str:
    """The display name of a stored base-model family ("SD1" -> "SD 1.x"); unknown values read as stored."""
    if not value:
        return _BASE_LABELS[BaseModel.UNKNOWN]
    return _BASE_LABELS.get(value, value)


def network_type_label(value: str | None) -> str:
    return _TYPE_LABELS.get(value or "", value or "")


def human_datetime(value: datetime | date | str | None, empty: str = "–") -> str:
    """A date a person reads: "today 14:05", "yesterday 09:12", "3 Dec 2026, 18:40" (local time zone).

    ISO strings (as the dashboard's API data carries them) are accepted too."""
    if value in (None, ""):
        return empty
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        if timezone.is_aware(value):
            value = timezone.localtime(value)
        today = timezone.localdate()
        days = (today - value.date()).days
        if days == 0:
            return "today " + format_date(value, "H:i")
        if days == 1:
            return "yesterday " + format_date(value, "H:i")
        return format_date(value, "j M Y, H:i")
    return format_date(value, "j M Y")
