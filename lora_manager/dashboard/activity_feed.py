"""The dashboard's activity feed: scans, embedding runs, failed generations and archive work, newest first.

Each source is one short indexed query; ``recent`` merges them. Imports, exports and backups come from
the archive app's run rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.urls import reverse
from django.utils import timezone

from adapters.models import ScanRun
from generation.models import GenerationJob, JobStatus
from recommendations.models import EmbeddingRun

FEED_LIMIT = 15


def _event(kind: str, at: datetime | None, title: str, status: str, detail: str = "", url: str = "") -> dict:
    return {
        "kind": kind,
        "at": at.isoformat() if at else None,
        "when": timezone.localtime(at).strftime("%Y-%m-%d %H:%M") if at else "",
        "title": title,
        "status": status,
        "detail": detail[:300],
        "url": url,
    }


def scan_events(limit: int = FEED_LIMIT) -> list[dict[str, Any]]:
    events = []
    for run in ScanRun.objects.order_by("-created_at", "-id")[:limit]:
        if run.is_active:
            detail = f"{run.phase or run.status}: {run.done}/{run.total}"
        elif run.status == ScanRun.Status.FAILED:
            detail = run.message
        else:
            detail = f"{run.found} found, {run.added} added, {run.updated} updated, {run.missing} missing"
        events.append(_event("scan", run.finished_at or run.created_at, f"Scan #{run.pk}", run.status, detail))
    return events


def failed_job_events(limit: int = FEED_LIMIT) -> list[dict[str, Any]]:
    # The feed is the same for everyone: private jobs stay out (the one visibility rule, with no user).
    jobs = GenerationJob.objects.visible_to(None).filter(status=JobStatus.FAILED).order_by("-created_at", "-id")[:limit]
    return [
        _event(
            "generation",
            job.finished_at or job.created_at,
            f"Generation #{job.pk} failed",
            job.status,
            job.message,
            reverse("generation:job", args=[job.pk]),
        )
        for job in jobs
    ]


def embedding_events(limit: int = FEED_LIMIT) -> list[dict[str, Any]]:
    runs = EmbeddingRun.objects.order_by("-created_at", "-id")[:limit]
    return [
        _event(
            "embedding",
            run.finished_at or run.created_at,
            f"Embedding run #{run.pk}",
            run.status,
            run.message or f"{run.embedded} embedded, {run.indexed} indexed",
        )
        for run in runs
    ]


def archive_events(limit: int = FEED_LIMIT) -> list[dict[str, Any]]:
    """Exports, backups, import checks and imports run from the web or the scheduler (``ArchiveRun``)."""
    from archive.models import ArchiveRun

    events = []
    for run in ArchiveRun.objects.order_by("-created_at", "-id")[:limit]:
        name = run.original_name or run.file_name
        detail = run.message or (f"{run.phase}: {run.done}/{run.total}" if run.is_active else name)
        title = f"{run.get_kind_display()} #{run.pk}" + (f" ({name})" if name and name not in detail else "")
        events.append(
            _event(
                run.kind,
                run.finished_at or run.created_at,
                title,
                run.status,
                detail,
                reverse("archive:run", args=[run.pk]),
            )
        )
    return events


def recent(limit: int = FEED_LIMIT) -> list[dict[str, Any]]:
    events = scan_events(limit) + failed_job_events(limit) + embedding_events(limit) + archive_events(limit)
    events.sort(key=lambda e: e["at"] or "", reverse=True)
    return events[:limit]
