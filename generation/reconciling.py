"""Settling rows a killed worker left QUEUED or RUNNING, against RQ's own records.

Run when a worker starts (run_worker) and whenever a generation takes its backend's lock. A RUNNING
row is never retried: SD.Next may already have run it, so it is marked FAILED with a message that
says so, and the user decides whether to re-run it.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import timedelta

import django_rq
from django.utils import timezone
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.job import JobStatus as RQStatus
from rq.worker import Worker

from generation import backends, progress
from generation.models import GenerationJob, JobStatus

logger = logging.getLogger(__name__)

GRACE = timedelta(seconds=60)  # a row is written before its RQ job is enqueued (on commit)
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
    now = timezone.now()
    for job in GenerationJob.objects.filter(status__in=[JobStatus.QUEUED, JobStatus.RUNNING]):
        try:
            if job.target_id is not None:  # a delivery: it runs on the default queue
                connection = django_rq.get_connection("default")
            else:
                connection = backends.queue(backends.get(job.backend)).connection
        except (backends.BackendNotConfigured, KeyError):
            reason = f"Its backend '{job.backend}' is no longer configured."
        else:
            reason = _stale_reason(job, connection, now)
        if reason is None:
            continue
        message = reason if reason != "stopped" else WORKER_STOPPED
        if mark_failed(job.pk, message):
            fixed += 1
            progress.JobReporter(job.pk).status()
            logger.warning("generation %s: %s", job.pk, message)
    return fixed


def _stale_reason(job: GenerationJob, connection, now) -> str | None:
    try:
        rq_job = Job.fetch(job.rq_job_id, connection=connection)
    except NoSuchJobError:
        if now - job.created_at < GRACE:
            return None
        return LOST if job.status == JobStatus.QUEUED else "stopped"
    status = rq_job.get_status(refresh=False)
    if status in (RQStatus.QUEUED, RQStatus.SCHEDULED, RQStatus.DEFERRED):
        return None if job.status == JobStatus.QUEUED else "stopped"
    if status == RQStatus.STARTED:
        return None if worker_alive(rq_job.worker_name, connection) else "stopped"
    if job.status == JobStatus.QUEUED:
        return LOST
    return "stopped"


def worker_alive(name: str | None, connection) -> bool:
    """A worker's key exists and, when it ran on this machine, its process still does."""
    if not name:
        return False
    key = Worker.redis_worker_namespace_prefix + name
    if not connection.exists(key):
        return False
    worker = Worker.find_by_key(key, connection=connection)
    if worker is None:
        return False
    if worker.hostname == socket.gethostname() and worker.pid:
        try:
            os.kill(worker.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
    return True
