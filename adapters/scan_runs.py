"""A scan as a tracked run: the row users watch, the job that executes it, progress as it goes.

Views, the admin, the periodic rescan and ``manage.py scan_library`` all go through ``execute``, so
every scan leaves the same record (counts, issues, timings) whoever started it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.db import transaction

from adapters import civitai_runs, identity, scanning
from adapters.models import AdapterFile, ScanRun
from adapters.signals import send_catalog_changed
from lora_manager import realtime
from lora_manager.runs import tracked

log = logging.getLogger(__name__)
SETTLE_SECONDS = 5.0


def active_run() -> ScanRun | None:
    return ScanRun.objects.filter(status__in=ScanRun.ACTIVE).first()


def start_scan(user=None, roots: list[str] | None = None, hash_files: bool = True) -> ScanRun:
    """Queue a scan unless one is already queued or running (then that one is returned). A scan
    whose worker died is settled first, so it never blocks the next one."""
    tracked.reconcile(ScanRun, quietly=True)
    with transaction.atomic():
        running = active_run()
        if running is not None:
            return running
        return tracked.start(ScanRun, roots=roots or [], hash_files=hash_files, requested_by=user)


def start_first_scan() -> ScanRun | None:
    """A new install with library folders configured (``LORA_MANAGER_LIBRARY_DIRS``) scans them as soon as
    the worker starts, instead of showing an empty library until a click or the hourly rescan. A catalog
    that has files, or a library that was scanned successfully before, is left alone."""
    if not settings.LIBRARY_DIRS or AdapterFile.objects.exists():
        return None
    if ScanRun.objects.filter(status=ScanRun.Status.SUCCEEDED).exists():
        return None
    return start_scan()


def first_scan_on_worker_start(queues: list[str]) -> str:
    """Declared in AdaptersConfig.ready(): run_worker calls it with its queues; says what it did."""
    if "default" in queues and start_first_scan():
        return "library folders are configured and the catalog is empty: first scan queued"
    return ""


def execute(run: ScanRun, echo: Callable[[str, int, int], None] | None = None, settle_wait: bool = False) -> ScanRun:
    """Scan (and hash) as the run says; on error the row says what went wrong and the error re-raises.

    Files modified moments ago are postponed (they may still be downloading); with ``settle_wait``
    (the command line, where the user waits anyway) they get one more try once they have settled.
    """

    def work(run: ScanRun, reporter: realtime.RunReporter) -> None:
        summary = scanning.scan(run.roots or None, progress=reporter)
        if run.hash_files:
            wait = SETTLE_SECONDS + 0.5 if settle_wait else 0.0  # each file as soon as it has settled
            counts = identity.hash_pending(workers=settings.HASH_WORKERS, progress=reporter, settle_wait=wait)
            summary.hashed, summary.postponed = counts["hashed"], counts["postponed"]
            summary.relinked += counts["relinked"]
            summary.errors += counts["errors"]
        # No thumbnails here: decoding ~10 ms a preview would double a large scan. The preview view makes
        # them on first view, and the scan job queues thumbnails_job to fill in the rest (tasks.py).
        for key, value in summary.counts().items():
            setattr(run, key, value)
        run.issues, run.phase = summary.issues, "done"
        run.message = (
            f"{summary.found} files: {summary.added} added, {summary.updated} updated, {summary.relinked} relinked"
        )

    run = tracked.execute(run, work, echo, phase="listing")
    if run.status == ScanRun.Status.SUCCEEDED:
        send_catalog_changed("scan")  # recommendations embed what the scan changed
        _civitai_after_scan()
    return run


def _civitai_after_scan() -> None:
    """LORA_MANAGER_CIVITAI_AUTO: queue a lookup of the adapters never checked; a failure never fails the scan."""
    try:
        civitai_runs.after_scan()
    except Exception as exc:  # noqa: BLE001 - the scan itself succeeded
        log.warning("could not start the Civitai lookup after the scan: %s", exc)
