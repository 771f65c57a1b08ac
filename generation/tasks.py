"""RQ jobs of generation. They take ids; the work is in pipeline.py."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import django_rq
from django.conf import settings
from redis.exceptions import LockError
from rq.exceptions import AbandonedJobError

from generation import backends, deliveries, pipeline, progress, retention, sweeps
from generation.models import GenerationJob, JobStatus
from generation.reconciling import fail_other_running, mark_failed
from lora_manager.jobs import tracked

logger = logging.getLogger(__name__)
PERIODIC_RETENTION_PREFIX = "periodic-retention-"


@tracked
def generate(job_id: int) -> str:
    """Run one generation, then let its sweep (if any) draw the grid when it was the last cell."""
    try:
        return _generate(job_id)
    finally:
        sweeps.job_finished(job_id)


@tracked
def deliver(job_id: int) -> str:
    """Send one composed prompt to its webhook or command (generation/deliveries.py)."""
    return deliveries.run(job_id).status


def _generate(job_id: int) -> str:
    """Run one generation while holding its backend (one job per SD.Next at a time, whoever runs it)."""
    row = GenerationJob.objects.filter(pk=job_id).values("backend", "status").first()
    if row is None:
        return "gone"
    if row["status"] != JobStatus.QUEUED:  # cancelled meanwhile, or a re-delivered job that already started
        return pipeline.run(job_id).status
    backend = backends.get(row["backend"])
    lock = backends.run_lock(backend)

    def no_longer_queued() -> bool:
        return not GenerationJob.objects.filter(pk=job_id, status=JobStatus.QUEUED).exists()

    if not backends.acquire(lock, give_up=no_longer_queued):
        return GenerationJob.objects.get(pk=job_id).status
    try:
        fail_other_running(backend.name, job_id)  # we hold the backend: any other RUNNING row is stale
        return pipeline.run(job_id, lock=lock).status
    finally:
        try:
            lock.release()
        except LockError:
            logger.warning("the lock of backend %s expired during job %s", backend.name, job_id)


def on_job_failure(job, connection, exc_type, exc_value, traceback) -> None:
    """RQ's failure callback (also for abandoned jobs of dead workers): the row must not stay active."""
    try:
        job_id = int(job.args[0])
    except (IndexError, TypeError, ValueError):
        return
    if exc_type is AbandonedJobError or isinstance(exc_value, AbandonedJobError):
        message = pipeline.WORKER_STOPPED
    else:
        message = f"The worker could not run this job: {exc_value}"
    if mark_failed(job_id, message):
        progress.JobReporter(job_id).status()
    sweeps.job_finished(job_id)


@tracked
def retention_job(requested_by: str = "") -> dict:
    """Apply the retention policy now (the button, the command with --queue, or the periodic run)."""
    return retention.apply().as_dict()


def periodic_retention() -> None:
    """Apply the retention policy, then schedule the next run (RQ's scheduler, like the periodic rescan)."""
    retention.apply()
    schedule_periodic_retention()


def schedule_periodic_retention() -> bool:
    """Schedule the next retention run unless one is scheduled or the policy or interval is off."""
    minutes = settings.RETENTION_INTERVAL_MINUTES
    if not minutes or not retention.policy().active:
        return False
    queue = django_rq.get_queue("default")
    if any(job_id.startswith(PERIODIC_RETENTION_PREFIX) for job_id in queue.scheduled_job_registry.get_job_ids()):
        return False
    queue.enqueue_in(
        timedelta(minutes=minutes), periodic_retention, job_id=f"{PERIODIC_RETENTION_PREFIX}{int(time.time())}"
    )
    return True
