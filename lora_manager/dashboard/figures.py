"""The dashboard's figures, all read from the database: what I have, what I use, what I can delete.

Each section is a plain function returning plain data (dicts, lists, numbers), so the page, its htmx
refresh and ``GET /api/v1/dashboard`` show the same truth. Every query is an aggregate or a short
LIMIT over an indexed column: no catalog row is loaded into Python to be counted.

The catalog's figures (library totals, storage, the used / unused lists) are kept per process until
the catalog version changes (``derived.catalog_token``: any write a figure depends on changes it) or an
adapter is used (the newest ``last_used_at``) or the day changes, so the 15-second poll costs two
index lookups at 100,000 adapters; the first request after a write recomputes them (the facet
columns re-read only the parts that changed). Generation and recommendation figures are read each time.
"""

from __future__ import annotations

import statistics
from datetime import date, datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Count, F, Max, Q, Sum
from django.db.models.functions import TruncDate
from django.http import QueryDict
from django.utils import timezone

from adapters import derived, facets, gallery, gallery_filter
from adapters.models import Adapter, AdapterFile, BaseModel, FileStatus, LibraryRoot, NetworkType
from generation.models import GenerationJob, JobStatus, ResultRating
from lora_manager.dashboard import activity_feed

USAGE_DAYS = 30
LONG_UNUSED_DAYS = 90
LIST_LIMIT = 10
OUTCOMES = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


_CACHED: dict[tuple, tuple[tuple, Any]] = {}  # (database, section) -> (catalog key, value)


def _catalog_key() -> tuple | None:
    """What the catalog figures depend on beyond the clock's day: None inside a transaction (a caller
    mid-edit, or a test), where the version may not show uncommitted changes yet, so nothing is reused."""
    if connection.in_atomic_block:
        return None
    newest_use = Adapter.objects.aggregate(newest=Max("last_used_at"))["newest"]  # a lone MAX: the index's end
    return derived.catalog_token(), newest_use, timezone.localdate()


def _cached(section: str, key: tuple | None, compute):
    if key is None:
        return compute()
    slot = (connection.vendor, connection.settings_dict["NAME"], section)
    found = _CACHED.get(slot)
    if found is not None and found[0] == key:
        return found[1]
    value = compute()
    _CACHED[slot] = (key, value)
    return value


def clear_cache() -> None:
    _CACHED.clear()


def _labels(choices: list[tuple[str, str]], counts: dict[str, int]) -> list[dict[str, Any]]:
    known = [{"value": v, "label": label, "count": counts.pop(v, 0)} for v, label in choices]
    extra = [{"value": v, "label": v, "count": n} for v, n in counts.items()]  # values older versions stored
    return sorted([row for row in known + extra if row["count"]], key=lambda row: -row["count"])


def _adapter_row(adapter: Adapter) -> dict[str, Any]:
    return {
        "id": adapter.pk,
        "name": adapter.name,
        "base_model": adapter.base_model,
        "usage_count": adapter.usage_count,
        "last_used_at": adapter.last_used_at.isoformat() if adapter.last_used_at else None,
        "created_at": adapter.created_at.isoformat(),
        "active": adapter.active,
    }


def _catalog_counts(querystring: str = "") -> facets.Counts:
    """Counts from the gallery's facet columns (read once per catalog version): the dashboard's numbers
    and the gallery's are then the same by construction, and cost no table scan at 100k adapters."""
    query = gallery.parse(QueryDict(querystring))
    return facets.counts(query, None)


def _first_ids(querystring: str, sort: str, limit: int = LIST_LIMIT) -> list[Adapter]:
    query = gallery.parse(QueryDict(querystring))
    raw = facets.counts(query, None)
    ids = facets.page_ids(raw, sort, gallery.order_sql(sort), 0, limit) if raw.total else []
    rows = Adapter.objects.in_bulk(ids)
    return [rows[pk] for pk in ids if pk in rows]


def library(key: tuple | None = None) -> dict[str, Any]:
    """Totals, breakdowns, storage per library root, files needing attention and the newest adapters."""
    return _cached("library", key or _catalog_key(), _library)


def _file_figures() -> tuple[dict[str, int], dict[int, tuple[int, int]]]:
    """Files per status, and (bytes, files) of present files per library root: one pass over the files."""
    files = dict(AdapterFile.objects.values_list("status").annotate(n=Count("id")).order_by())
    stored = {
        root_id: (size or 0, n)
        for root_id, size, n in AdapterFile.objects.filter(status=FileStatus.PRESENT)
        .values_list("root")
        .annotate(size=Sum("size"), n=Count("id"))
        .order_by()
        .values_list("root", "size", "n")
    }
    return files, stored


def _files_key() -> tuple | None:
    """The file figures change only with the files and roots tables (their tokens change with every file
    added, removed, moved, resized or changing status): an edit of adapters does not re-read the files."""
    if connection.in_atomic_block:
        return None
    parts = derived.catalog_parts()
    return tuple(parts.get(table) for table in ("adapters_adapterfile", "adapters_libraryroot"))


def _library() -> dict[str, Any]:
    raw = _catalog_counts()
    cube = raw.cube
    active = cube["active"][True]
    files, stored = _cached("files", _files_key(), _file_figures)
    roots = [
        {
            "id": root.pk,
            "path": root.path,
            "online": root.online,
            "bytes": stored.get(root.pk, (0, 0))[0],
            "files": stored.get(root.pk, (0, 0))[1],
        }
        for root in LibraryRoot.objects.order_by("path")
    ]
    return {
        "total": raw.total,
        "active": active,
        "inactive": raw.total - active,
        "by_base_model": _labels(list(BaseModel.choices), dict(cube["base"])),
        "by_network_type": _labels([(v, v) for v in NetworkType.values], dict(cube["type"])),
        "roots": roots,
        "storage_bytes": sum(root["bytes"] for root in roots),
        "missing_files": files.get(FileStatus.MISSING, 0),
        "offline_files": files.get(FileStatus.OFFLINE, 0),
        "with_issues": cube["status"]["issues"],
        "unreadable_files": _catalog_counts("status=error").total,  # the "Files with problems" page
        "duplicates": raw.duplicates,
        "recently_added": [_adapter_row(a) for a in _first_ids("", "-added")],
    }


def _day_range(days: int, today: date) -> list[date]:
    return [today - timedelta(days=offset) for offset in range(days - 1, -1, -1)]


def generations_per_day(days: int = USAGE_DAYS, now: datetime | None = None) -> list[dict[str, Any]]:
    """One row per day (oldest first, in the configured time zone) with the count of each outcome."""
    now = now or timezone.now()
    today = timezone.localtime(now).date()
    first = _day_range(days, today)[0]
    start = timezone.make_aware(datetime.combine(first, datetime.min.time()))
    rows = (
        GenerationJob.objects.filter(created_at__gte=start)
        .annotate(day=TruncDate("created_at"))
        .values_list("day", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    table = {
        day: {"date": day.isoformat(), **dict.fromkeys(OUTCOMES, 0), "active": 0} for day in _day_range(days, today)
    }
    for day, status, n in rows:
        if day not in table:
            continue
        key = status if status in OUTCOMES else "active"
        table[day][key] += n
    return [{**row, "total": sum(row[k] for k in (*OUTCOMES, "active"))} for row in table.values()]


def _median_seconds_per_image(since: datetime) -> float | None:
    """Median of (finished - started) / images over succeeded jobs: what one picture costs in wall time."""
    rows = (
        GenerationJob.objects.filter(status=JobStatus.SUCCEEDED, created_at__gte=since, started_at__isnull=False)
        .exclude(finished_at__isnull=True)
        .annotate(images_n=Count("images"))
        .filter(images_n__gt=0)
        .values_list("started_at", "finished_at", "images_n")
    )
    per_image = [(finished - started).total_seconds() / n for started, finished, n in rows]
    return round(statistics.median(per_image), 2) if per_image else None


def _adapter_usage() -> dict[str, Any]:
    """Which LoRAs are (not) used: counts and lists as the linked gallery filters show them."""
    most_used = Adapter.objects.usable().filter(usage_count__gt=0).order_by("-usage_count", "id")[:LIST_LIMIT]
    never_query, long_query = "unused=never&active=1", f"unused={LONG_UNUSED_DAYS}&active=1"
    cutoff = gallery_filter.unused_cutoff(str(LONG_UNUSED_DAYS))
    long_unused = Adapter.objects.usable().filter(last_used_at__lt=cutoff, active=True)  # used once, then not since
    never_used_count = _catalog_counts(never_query).total
    return {
        "most_used": [_adapter_row(a) for a in most_used],
        # Never used = no generation ever; "unused for N days" includes them (the gallery's filter), so the
        # difference is the used-once-then-not-since count, from the facet columns (no wide-row reads).
        "never_used_count": never_used_count,
        "never_used": [_adapter_row(a) for a in _first_ids(never_query, "added")],
        "never_used_query": never_query,
        "long_unused_days": LONG_UNUSED_DAYS,
        "long_unused_count": _catalog_counts(long_query).total - never_used_count,
        "long_unused": [_adapter_row(a) for a in long_unused.order_by("last_used_at", "id")[:LIST_LIMIT]],
        "long_unused_query": long_query,
    }


def usage(days: int = USAGE_DAYS, now: datetime | None = None, key: tuple | None = None) -> dict[str, Any]:
    """Generations per day, success rate, median time per image and which LoRAs are (not) used."""
    now = now or timezone.now()
    since = now - timedelta(days=days)
    per_day = generations_per_day(days, now)
    outcomes = {status: sum(row[status] for row in per_day) for status in OUTCOMES}
    finished = outcomes[JobStatus.SUCCEEDED] + outcomes[JobStatus.FAILED]
    return {
        "days": days,
        "per_day": per_day,
        "outcomes": outcomes,
        "generations": sum(row["total"] for row in per_day),
        # Cancelled jobs are a user's choice, not a failure: the rate is succeeded / (succeeded + failed).
        "success_rate": round(outcomes[JobStatus.SUCCEEDED] / finished, 4) if finished else None,
        "median_seconds_per_image": _median_seconds_per_image(since),
        **_cached("adapter_usage", key or _catalog_key(), _adapter_usage),
        "best_rated": best_rated_loras(),
        **result_thumbs(),
    }


def result_thumbs() -> dict[str, int]:
    """▲/▼ on result images (job pages, sweeps): what "rated up" means to someone who just rated one."""
    thumbs = ResultRating.objects.aggregate(up=Count("id", filter=Q(thumb=1)), down=Count("id", filter=Q(thumb=-1)))
    return {"results_up": thumbs["up"], "results_down": thumbs["down"]}


def best_rated_loras(limit: int = LIST_LIMIT) -> list[dict[str, Any]]:
    """LoRAs whose result images were rated best (``generation.learning.best_rated``)."""
    from generation.learning import best_rated

    return [
        {**_adapter_row(adapter), "rated": rated, "stars": stars, "approval_percent": approval}
        for adapter, rated, stars, approval in best_rated(limit)
    ]


def recommendations(now: datetime | None = None, days: int = USAGE_DAYS) -> dict[str, Any]:
    """How often suggestions were accepted (added to a composition) and thumbs up / down counts."""
    from lora_manager.models import SuggestionAcceptance
    from recommendations.models import Feedback

    now = now or timezone.now()
    since = now - timedelta(days=days)
    thumbs = Feedback.objects.aggregate(up=Count("id", filter=Q(value=1)), down=Count("id", filter=Q(value=-1)))
    accepted = SuggestionAcceptance.objects.filter(created_at__gte=since)
    # An acceptance "led to a generation" when the same user generated with that LoRA after accepting it.
    generated = (
        accepted.filter(
            adapter__generation_uses__job__requested_by=F("user"),
            adapter__generation_uses__job__created_at__gte=F("created_at"),
        )
        .values("id")
        .distinct()
        .count()
    )
    total = accepted.count()
    return {
        "days": days,
        "accepted": total,
        "accepted_by_kind": dict(accepted.values_list("kind").annotate(n=Count("id")).order_by()),
        "accepted_then_generated": generated,
        "generated_rate": round(generated / total, 4) if total else None,
        "thumbs_up": thumbs["up"],
        "thumbs_down": thumbs["down"],
    }


def collect(now: datetime | None = None) -> dict[str, Any]:
    """Everything the dashboard shows, as JSON-ready data."""
    key = _catalog_key()
    return {
        "generated_at": (now or timezone.now()).isoformat(),
        "library": library(key),
        "usage": usage(now=now, key=key),
        "recommendations": recommendations(now=now),
        "activity": activity_feed.recent(),
    }
