"""Filtering and sorting past generations for the history page (all in the query string, bookmarkable).

Unknown or malformed values are ignored (and reported), never a 500.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.db.models import DurationField, Exists, ExpressionWrapper, F, OuterRef, Q, QuerySet
from django.http import QueryDict
from django.utils import timezone

from generation.models import GenerationJob, JobLora, JobStatus

SORTS = {
    "newest": ("-created_at", "-id"),
    "oldest": ("created_at", "id"),
    "slowest": ("-duration", "-id"),
    "fastest": ("duration", "id"),
}
SORT_LABELS = {
    "newest": "Newest first",
    "oldest": "Oldest first",
    "slowest": "Slowest first",
    "fastest": "Fastest first",
}


@dataclass
class Filters:
    lora: str = ""
    checkpoint: str = ""
    status: str = ""
    date_from: date | None = None
    date_to: date | None = None
    sort: str = "newest"
    ignored: list[str] = field(default_factory=list)

    def querystring(self) -> str:
        params = QueryDict(mutable=True)
        for key in ("lora", "checkpoint", "status"):
            if getattr(self, key):
                params[key] = getattr(self, key)
        if self.date_from:
            params["from"] = self.date_from.isoformat()
        if self.date_to:
            params["to"] = self.date_to.isoformat()
        if self.sort != "newest":
            params["sort"] = self.sort
        return params.urlencode()


def _date(value: str, label: str, ignored: list[str]) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        ignored.append(f"{label} {value!r} is not a date (YYYY-MM-DD)")
        return None


def parse(query: QueryDict) -> Filters:
    ignored: list[str] = []
    status = query.get("status", "")
    if status and status not in JobStatus.values:
        ignored.append(f"status {status!r}")
        status = ""
    sort = query.get("sort", "newest")
    if sort not in SORTS:
        ignored.append(f"sort {sort!r}")
        sort = "newest"
    return Filters(
        lora=query.get("lora", "").strip()[:200],
        checkpoint=query.get("checkpoint", "").strip()[:255],
        status=status,
        date_from=_date(query.get("from", ""), "from", ignored),
        date_to=_date(query.get("to", ""), "to", ignored),
        sort=sort,
        ignored=ignored,
    )


def jobs(filters: Filters) -> QuerySet[GenerationJob]:
    qs = GenerationJob.objects.select_related("requested_by").prefetch_related("images", "loras")
    if filters.lora:
        uses = JobLora.objects.filter(job=OuterRef("pk")).filter(
            Q(name__icontains=filters.lora) | Q(adapter__name__icontains=filters.lora)
        )
        qs = qs.filter(Exists(uses))
    if filters.checkpoint:
        qs = qs.filter(checkpoint=filters.checkpoint)
    if filters.status:
        qs = qs.filter(status=filters.status)
    zone = timezone.get_current_timezone()
    if filters.date_from:
        qs = qs.filter(created_at__gte=datetime.combine(filters.date_from, time.min, tzinfo=zone))
    if filters.date_to:
        qs = qs.filter(created_at__lt=datetime.combine(filters.date_to + timedelta(days=1), time.min, tzinfo=zone))
    if filters.sort in ("slowest", "fastest"):
        qs = qs.filter(started_at__isnull=False, finished_at__isnull=False).annotate(
            duration=ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
        )
    return qs.order_by(*SORTS[filters.sort])


def checkpoints() -> list[str]:
    """Checkpoints that appear in the history (for the filter's choices)."""
    values = GenerationJob.objects.exclude(checkpoint="").values_list("checkpoint", flat=True).distinct()
    return sorted(values.order_by())[:200]
