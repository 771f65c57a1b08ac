"""RQ jobs of the archive app. They take ids and call the domain functions (through ``runs.execute``)."""

from __future__ import annotations

import time
from datetime import timedelta

import django_rq
from django.conf import settings

from archive import runs, uploads
from archive.models import ArchiveRun
from lora_manager.jobs import tracked

PERIODIC_BACKUP_PREFIX = "periodic-backup-"
PERIODIC_UPLOAD_CLEANUP_PREFIX = "periodic-upload-cleanup-"
UPLOAD_CLEANUP_INTERVAL = timedelta(hours=1)


def _run(run_id: int) -> dict:
    run = runs.execute(ArchiveRun.objects.get(pk=run_id))
    return {"status": run.status, "message": run.message}


@tracked
def export_job(run_id: int) -> dict:
    return _run(run_id)


@tracked
def backup_job(run_id: int) -> dict:
    return _run(run_id)


@tracked
def check_job(run_id: int) -> dict:
    return _run(run_id)


@tracked
def import_job(run_id: int) -> dict:
    return _run(run_id)


def periodic_backup() -> None:
    """Queue a backup, then schedule the next one (RQ's scheduler runs it; interval 0 turns it off)."""
    runs.start_backup()
    schedule_periodic_backup()


def schedule_periodic_backup() -> bool:
    hours = settings.BACKUP_INTERVAL_HOURS
    if not hours:
        return False
    queue = django_rq.get_queue("default")
    if any(job_id.startswith(PERIODIC_BACKUP_PREFIX) for job_id in queue.scheduled_job_registry.get_job_ids()):
        return False
    queue.enqueue_in(timedelta(hours=hours), periodic_backup, job_id=f"{PERIODIC_BACKUP_PREFIX}{int(time.time())}")
    return True


def periodic_upload_cleanup() -> None:
    """Remove abandoned uploads (archive.uploads.remove_abandoned), then schedule the next run."""
    uploads.remove_abandoned()
    schedule_periodic_upload_cleanup()


def schedule_periodic_upload_cleanup() -> bool:
    queue = django_rq.get_queue("default")
    if any(job_id.startswith(PERIODIC_UPLOAD_CLEANUP_PREFIX) for job_id in queue.scheduled_job_registry.get_job_ids()):
        return False
    queue.enqueue_in(
        UPLOAD_CLEANUP_INTERVAL, periodic_upload_cleanup, job_id=f"{PERIODIC_UPLOAD_CLEANUP_PREFIX}{int(time.time())}"
    )
    return True
