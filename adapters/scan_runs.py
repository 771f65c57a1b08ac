"""A scan as a tracked run: the row users watch, the job that executes it, progress as it goes.

Views, the admin, the periodic rescan and ``manage.py scan_library`` all go through ``execute``, so
every scan leaves the same record (counts, issues, timings) whoever started it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from adapters import civitai_runs, identity, scanning, thumbnails
from adapters.models import AdapterFile, ScanRun
from lora_manager import jobs, realtime
from recommendations.embedding_runs import request_embedding_safely

log = logging.getLogger(__name__)
SCAN_GROUP = "scan.{pk}"
SETTLE_SECONDS = 5.0


class ScanReporter(realtime.RunReporter):
    group, event = SCAN_GROUP, "scan.progress"


def active_run() -> ScanRun | None:
    return ScanRun.objects.filter(status__in=[ScanRun.Status.QUEUED, ScanRun.Status.RUNNING]).first()


def start_scan(user=None, roots: list[str] | None = None, hash_files: bool = True) -> ScanRun:
    """Queue a scan unless one is already queued or running (then that one is returned)."""
    with transaction.atomic():
        running = active_run()
        if running is not None:
            return running
        run = ScanRun.objects.create(roots=roots or [], hash_files=hash_files, requested_by=user)
        run.rq_job_id = f"scan-{run.pk}"
        run.save(update_fields=["rq_job_id"])
        from adapters.tasks import scan_job

        jobs.enqueue("default", scan_job, run.pk, job_id=run.rq_job_id)
    return run


def start_first_scan() -> ScanRun | None:
    """A new install with library folders configured (``LORA_MANAGER_LIBRARY_DIRS``) scans them as soon as
    the worker starts, instead of showing an empty library until a click or the hourly rescan. A catalog
    that has files, or a library that was scanned successfully before, is left alone."""
    if not settings.LIBRARY_DIRS or AdapterFile.objects.exists():
        return None
    if ScanRun.objects.filter(status=ScanRun.Status.SUCCEEDED).exists():
        return None
    return start_scan()


def execute(run: ScanRun, echo: Callable[[str, int, int], None] | None = None, settle_wait: bool = False) -> ScanRun:
    """Scan (and hash) as the run says; on error the row says what went wrong and the error re-raises.

    Files modified moments ago are postponed (they may still be downloading); with ``settle_wait``
    (the command line, where the user waits anyway) they get one more try once they have settled.
    """
    reporter = ScanReporter(run, echo)
    run.status, run.started_at, run.phase = ScanRun.Status.RUNNING, timezone.now(), "listing"
    run.save(update_fields=["status", "started_at", "phase"])
    reporter.notify()
    try:
        summary = scanning.scan(run.roots or None, progress=reporter)
        if run.hash_files:
            counts = identity.hash_pending(workers=settings.HASH_WORKERS, progress=reporter)
            if settle_wait and counts["postponed"]:
                time.sleep(SETTLE_SECONDS + 0.5)
                again = identity.hash_pending(workers=settings.HASH_WORKERS, progress=reporter)
                counts = {key: again[key] + (counts[key] if key != "postponed" else 0) for key in counts}
            summary.hashed, summary.postponed = counts["hashed"], counts["postponed"]
            summary.relinked += counts["relinked"]
            summary.errors += counts["errors"]
            reporter("thumbnails", 0, 0)
            thumbnails.make_missing_thumbnails()
    except Exception as exc:
        run.status, run.message, run.finished_at = ScanRun.Status.FAILED, f"scan failed: {exc}", timezone.now()
        run.save(update_fields=["status", "message", "finished_at"])
        reporter.notify()
        raise
    for key, value in summary.counts().items():
        setattr(run, key, value)
    run.issues = summary.issues
    run.status, run.phase, run.finished_at = ScanRun.Status.SUCCEEDED, "done", timezone.now()
    run.message = (
        f"{summary.found} files: {summary.added} added, {summary.updated} updated, {summary.relinked} relinked"
    )
    run.save()
    reporter.notify()
    request_embedding_safely("scan")  # recommendations: embed what the scan changed
    _civitai_after_scan()
    return run


def _civitai_after_scan() -> None:
    """LORA_MANAGER_CIVITAI_AUTO: queue a lookup of the adapters never checked; a failure never fails the scan."""
    try:
        civitai_runs.after_scan()
    except Exception as exc:  # noqa: BLE001 - the scan itself succeeded
        log.warning("could not start the Civitai lookup after the scan: %s", exc)


def reconcile_stale_runs() -> int:
    """Rows RUNNING/QUEUED whose RQ job no longer exists or runs belonged to a killed worker."""
    import django_rq
    from rq.job import Job

    connection = django_rq.get_connection("default")
    queue = django_rq.get_queue("default")
    alive = set(queue.started_job_registry.get_job_ids()) | set(queue.get_job_ids())
    fixed = 0
    for run in ScanRun.objects.filter(status__in=[ScanRun.Status.QUEUED, ScanRun.Status.RUNNING]):
        if run.rq_job_id in alive:
            continue
        if run.rq_job_id and Job.exists(run.rq_job_id, connection=connection) and run.status == ScanRun.Status.QUEUED:
            continue
        run.status, run.finished_at = ScanRun.Status.FAILED, timezone.now()
        run.message = "the worker stopped before this scan finished; start a new scan"
        run.save(update_fields=["status", "finished_at", "message"])
        fixed += 1
    return fixed
