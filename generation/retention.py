"""History curation: bulk delete of jobs and images, and the retention policy.

Retention keeps the last N jobs *or* the last D days (a job is kept if either keeps it; 0 turns a
limit off, both 0 turn retention off) and never removes a pinned job, a job with a rated image, or
a job that is queued or running. ``plan`` counts what ``apply`` would remove (the page shows it
before anyone runs it); ``apply`` deletes rows in short transactions and the files after each
commit. Ratings keep what they taught (their LoRA attributions are copies), even for deleted images.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Sum
from django.utils import timezone

from generation import progress, storage
from generation.models import ACTIVE_STATUSES, GenerationImage, GenerationJob, ResultRating

BATCH = 500


@dataclass(frozen=True)
class Policy:
    keep_jobs: int = 0
    keep_days: int = 0

    @property
    def active(self) -> bool:
        return bool(self.keep_jobs or self.keep_days)

    def describe(self) -> str:
        if not self.active:
            return "Retention is off (set LORA_MANAGER_RETENTION_KEEP_JOBS or _KEEP_DAYS)."
        parts = []
        if self.keep_jobs:
            parts.append(f"the last {self.keep_jobs:,} job{'s' if self.keep_jobs != 1 else ''}")
        if self.keep_days:
            parts.append(f"the last {self.keep_days} day{'s' if self.keep_days != 1 else ''}")
        return f"Keeps {' or '.join(parts)}, and every pinned or rated job."


def policy() -> Policy:
    return Policy(settings.RETENTION_KEEP_JOBS, settings.RETENTION_KEEP_DAYS)


def interval_seconds() -> int:
    """How often RQ's scheduler applies the policy (0: never, when the interval or the policy is off)."""
    return settings.RETENTION_INTERVAL_MINUTES * 60 if policy().active else 0


@dataclass
class Plan:
    jobs: int = 0
    images: int = 0
    bytes: int = 0
    kept_pinned: int = 0
    kept_rated: int = 0
    kept_active: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Outcome:
    deleted_jobs: int = 0
    deleted_images: int = 0
    freed_bytes: int = 0
    skipped: list[str] = field(default_factory=list)
    message: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def _rated() -> Exists:
    return Exists(ResultRating.objects.filter(job=OuterRef("pk")))


def _outside(rule: Policy, now=None) -> QuerySet[GenerationJob]:
    """Jobs that neither the count limit nor the age limit keeps (before protections)."""
    now = now or timezone.now()
    old = GenerationJob.objects.all()
    if rule.keep_jobs:
        newest = GenerationJob.objects.order_by("-created_at", "-id").values("pk")[: rule.keep_jobs]
        old = old.exclude(pk__in=list(newest.values_list("pk", flat=True)))
    if rule.keep_days:
        old = old.filter(created_at__lt=now - timedelta(days=rule.keep_days))
    return old


def _removable(qs: QuerySet[GenerationJob]) -> QuerySet[GenerationJob]:
    return qs.exclude(status__in=ACTIVE_STATUSES).filter(pinned=False).exclude(_rated())


def plan(rule: Policy | None = None, now=None) -> Plan:
    """What ``apply`` would remove right now, and what it keeps among the old jobs (and why)."""
    rule = rule or policy()
    if not rule.active:
        return Plan()
    old = _outside(rule, now)
    removable = _removable(old)
    images = GenerationImage.objects.filter(job__in=removable)
    return Plan(
        jobs=removable.count(),
        images=images.count(),
        bytes=images.aggregate(total=Sum("size"))["total"] or 0,
        kept_pinned=old.filter(pinned=True).count(),
        kept_rated=old.filter(pinned=False).filter(_rated()).count(),
        kept_active=old.filter(status__in=ACTIVE_STATUSES).count(),
    )


def apply(rule: Policy | None = None, now=None) -> Outcome:
    """Remove what the policy does not keep: rows in batches, then their folders once each batch committed."""
    rule = rule or policy()
    if not rule.active:
        return Outcome(message=rule.describe())
    outcome = _delete(_removable(_outside(rule, now)))
    kept = plan(rule, now)
    if kept.kept_active:
        outcome.skipped.append(f"{kept.kept_active} queued or running job(s) left alone")
    outcome.message = _summary(outcome, "Retention removed")
    return outcome


def delete_jobs(ids: list[int], user=None) -> Outcome:
    """Bulk delete chosen jobs (pinned ones too: choosing them is explicit). Queued or running jobs
    are skipped with a note; other users' private jobs are invisible and so never deleted."""
    chosen = GenerationJob.objects.filter(pk__in=ids)
    if user is not None and not user.is_staff:
        chosen = chosen.filter(Q(private=False) | Q(requested_by=user))
    active = list(chosen.filter(status__in=ACTIVE_STATUSES).values_list("pk", flat=True))
    outcome = _delete(chosen.exclude(status__in=ACTIVE_STATUSES))
    if active:
        listed = ", ".join(f"#{pk}" for pk in active[:10])
        outcome.skipped.append(f"{len(active)} queued or running job(s) kept ({listed}): cancel them first")
    missing = len(set(ids)) - outcome.deleted_jobs - len(active)
    if missing > 0:
        outcome.skipped.append(f"{missing} job(s) were already gone or are not yours to delete")
    outcome.message = _summary(outcome, "Deleted")
    return outcome


def delete_images(job: GenerationJob, indexes: list[int]) -> Outcome:
    """Delete some images of a finished job (rows and files); the job and its other images stay."""
    outcome = Outcome()
    if job.is_active:
        outcome.message = "This job is still queued or running: its images cannot be deleted yet."
        return outcome
    with transaction.atomic():
        rows = list(GenerationImage.objects.filter(job=job, index__in=indexes))
        GenerationImage.objects.filter(pk__in=[r.pk for r in rows]).delete()
    for row in rows:
        for relative in (row.path, row.thumbnail):
            if relative:
                with contextlib.suppress(OSError, ValueError):
                    storage.absolute(relative).unlink(missing_ok=True)
    outcome.deleted_images, outcome.freed_bytes = len(rows), sum(r.size for r in rows)
    outcome.message = f"Deleted {len(rows)} image{'s' if len(rows) != 1 else ''}." if rows else "No such image."
    return outcome


def _delete(qs: QuerySet[GenerationJob]) -> Outcome:
    outcome = Outcome()
    while True:
        with transaction.atomic():
            batch = list(qs.order_by("id").values_list("pk", flat=True)[:BATCH])
            if not batch:
                break
            # The protections are evaluated again here: a job rated or pinned a moment ago stays.
            doomed = qs.filter(pk__in=batch)
            ids = list(doomed.values_list("pk", flat=True))
            images = GenerationImage.objects.filter(job_id__in=ids).aggregate(n=Count("id"), size=Sum("size"))
            GenerationJob.objects.filter(pk__in=ids).delete()
        for pk in ids:
            storage.delete_job_files(pk)
            progress.send_status(pk)
        outcome.deleted_jobs += len(ids)
        outcome.deleted_images += images["n"] or 0
        outcome.freed_bytes += images["size"] or 0
    return outcome


def _summary(outcome: Outcome, verb: str) -> str:
    mb = outcome.freed_bytes / 1_000_000
    text = (
        f"{verb} {outcome.deleted_jobs} job{'s' if outcome.deleted_jobs != 1 else ''} and "
        f"{outcome.deleted_images} image{'s' if outcome.deleted_images != 1 else ''} ({mb:.1f} MB)."
    )
    if outcome.skipped:
        text += " " + "; ".join(outcome.skipped) + "."
    return text
