"""Settling rows a killed worker left QUEUED or RUNNING, against RQ's own records.

Declared in GenerationConfig.ready(): run when a worker starts (run_worker), by the janitor every
JANITOR_SECONDS, and (for its backend) whenever a generation takes its backend's lock. A RUNNING
row is never retried: SD.Next may already have run it, so it is marked FAILED with a message that
says so, and the user decides whether to re-run it.
"""

from __future__ import annotations

import logging

import django_rq
from django.utils import timezone

from generation import backends, progress
from generation.models import GenerationJob, JobStatus
from lora_manager.runs import workers

logger = logging.getLogger(__name__)

LOST = "This job was lost from the queue before it started (was Redis emptied or restarted?): submit it again."


def mark_failed(job_id: int, message: str, statuses: tuple[str, ...] = (JobStatus.QUEUED, JobStatus.RUNNING)) -> bool:
    return bool(
        GenerationJob.objects.filter(pk=job_id, status__in=statuses).update(
            status=JobStatus.FAILED, finished_at=timezone.now(), message=message, phase="", eta_seconds=None
        )
    )


def fail_other_running(backend: str, job_id: int) -> int:
    """Whoever holds a backend's lock runs its only job: other RUNNING rows there belong to dead workers."""
    from generation.pipeline import WORKER_STOPPED

    stale = list(
        GenerationJob.objects.filter(backend=backend, status=JobStatus.RUNNING)
        .exclude(pk=job_id)
        .values_list("pk", flat=True)
    )
    fixed = sum(mark_failed(pk, WORKER_STOPPED, (JobStatus.RUNNING,)) for pk in stale)
    for pk in stale:
        progress.JobReporter(pk).status()
    return fixed


def reconcile_stale_jobs() -> int:
    """Mark FAILED every active row whose RQ job is gone, over, or held by a worker that no longer runs."""
    from generation.pipeline import WORKER_STOPPED

    fixed = 0
    for job in GenerationJob.objects.filter(status__in=[JobStatus.QUEUED, JobStatus.RUNNING]):
        try:
            connection = django_rq.get_connection(backends.queue_name_of(job))
        except (backends.BackendNotConfigured, KeyError):
            reason = f"Its backend '{job.backend}' is no longer configured."
        else:
            reason = _stale_reason(job, connection)
        if reason is None:
            continue
        message = reason if reason != "stopped" else WORKER_STOPPED
        if reason == "stopped" and job.status == JobStatus.RUNNING:
            backends.free_lock_of_dead_job(job.pk)  # its backend is free for the next job now
        if mark_failed(job.pk, message):
            fixed += 1
            progress.JobReporter(job.pk).status()
            logger.warning("generation %s: %s", job.pk, message)
    return fixed


def _stale_reason(job: GenerationJob, connection) -> str | None:
    """The same rules as every tracked run (lora_manager.runs.workers.job_fate), in generation's words."""
    running = job.status == JobStatus.RUNNING
    fate = workers.job_fate(job.rq_job_id, connection, running=running, created_at=job.created_at)
    if fate is None:
        return None
    if fate.kind == "lost":
        return LOST
    if fate.kind == "failed":
        return f"The worker could not run this job: {fate.detail}" if fate.detail else "stopped"
    return "stopped"
