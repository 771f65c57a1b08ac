"""RQ jobs of generation. They take ids; the work is in pipeline.py."""

from __future__ import annotations

import logging

from redis.exceptions import LockError
from rq.exceptions import AbandonedJobError

from generation import backends, deliveries, pipeline, progress, retention
from generation.models import GenerationJob, JobStatus
from generation.reconciling import fail_other_running, mark_failed
from generation.signals import send_job_finished
from lora_manager.runs.jobs import tracked
from lora_manager.runs.workers import WorkHorseKilled

logger = logging.getLogger(__name__)


@tracked
def generate(job_id: int) -> str:
    """Run one generation, then say it ended (``job_finished``: its sweep, if any, may draw the grid)."""
    try:
        return _generate(job_id)
    finally:
        send_job_finished(job_id)


@tracked
def deliver(job_id: int) -> str:
    """Send one composed prompt to its webhook or command (generation/deliveries.py), then say it ended."""
    try:
        return deliveries.run(job_id).status
    finally:
        send_job_finished(job_id)


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

    if not backends.acquire(lock, give_up=no_longer_queued, token=backends.lock_token(job_id)):
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
    if isinstance(exc_value, (AbandonedJobError, WorkHorseKilled)) or exc_type in (AbandonedJobError, WorkHorseKilled):
        message = pipeline.WORKER_STOPPED
        backends.free_lock_of_dead_job(job_id)  # the next job of that backend starts now, not in a minute
    else:
        message = f"The worker could not run this job: {exc_value}"
    if mark_failed(job_id, message):
        progress.JobReporter(job_id).status()
    send_job_finished(job_id)


@tracked
def retention_job(requested_by: str = "") -> dict:
    """Apply the retention policy now (the button, the command with --queue, or the periodic run)."""
    return retention.apply().as_dict()
