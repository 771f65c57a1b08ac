"""A Civitai lookup as a tracked run, shaped like ``scan_runs``: the row people watch, the job that executes
it, progress as it goes, and a cancel button. One run at a time, so one client (and its per-host pacing)
talks to Civitai. Views, the admin, the API, ``manage.py fetch_civitai`` and the after-scan hook all come here.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.db import transaction
from django.utils import timezone

from adapters import civitai_lookup
from adapters.civitai import Cancelled, CivitaiError, CivitaiUnreachable
from adapters.models import Adapter, CivitaiRun
from adapters.signals import send_catalog_changed
from lora_manager import realtime
from lora_manager.runs import tracked, workers

CIVITAI_GROUP = CivitaiRun.progress_group
MAX_RECORDED_ISSUES = 2000


class CivitaiOff(ValueError):
    """The feature is switched off: nothing was started."""


CivitaiReporter = realtime.RunReporter  # events go to CivitaiRun.progress_group


def active_run() -> CivitaiRun | None:
    return CivitaiRun.objects.filter(status__in=[CivitaiRun.Status.QUEUED, CivitaiRun.Status.RUNNING]).first()


def start_run(mode: str = CivitaiRun.Mode.DUE, ids: list[int] | None = None, user=None) -> CivitaiRun:
    """Queue a lookup unless one is queued or running (then that one is returned: one at a time)."""
    if not civitai_lookup.enabled():
        raise CivitaiOff("Civitai lookups are switched off (LORA_MANAGER_CIVITAI_URL=off).")
    if mode not in CivitaiRun.Mode.values:
        raise ValueError(f"unknown mode {mode!r}: use one of {', '.join(CivitaiRun.Mode.values)}")
    tracked.reconcile(CivitaiRun, quietly=True)  # a lookup whose worker died never blocks the next one
    with transaction.atomic():
        running = active_run()
        if running is not None:
            return running
        return tracked.start(CivitaiRun, mode=mode, adapter_ids=list(ids or []), requested_by=user)


def request_cancel(run: CivitaiRun) -> CivitaiRun:
    """A queued run is cancelled at once; a running one stops before its next request (or while it waits)."""
    now = timezone.now()
    message = "cancelled before it started"
    if CivitaiRun.objects.filter(pk=run.pk, status=CivitaiRun.Status.QUEUED).update(
        status=CivitaiRun.Status.CANCELLED, cancel_requested=True, finished_at=now, message=message
    ):
        CivitaiReporter(run).notify()
    else:
        CivitaiRun.objects.filter(pk=run.pk, status=CivitaiRun.Status.RUNNING).update(cancel_requested=True)
    run.refresh_from_db()
    return run


class _CancelCheck:
    """Asks the row whether a cancel was requested, at most every ``interval`` seconds."""

    def __init__(self, run: CivitaiRun, interval: float = 0.5) -> None:
        self.run, self.interval, self.last, self.value = run, interval, 0.0, False

    def __call__(self) -> bool:
        now = time.monotonic()
        if not self.value and now - self.last >= self.interval:
            self.last = now
            self.value = CivitaiRun.objects.filter(pk=self.run.pk, cancel_requested=True).exists()
        return self.value


def _finish(run: CivitaiRun, status: str, message: str, reporter: CivitaiReporter) -> CivitaiRun:
    run.status, run.message, run.finished_at, run.phase = status, message, timezone.now(), "done"
    run.save()
    reporter.notify()
    if run.found:
        send_catalog_changed("civitai")  # trigger words, tags and descriptions changed
    return run


def execute(run: CivitaiRun, echo: Callable[[str, int, int], None] | None = None, client=None) -> CivitaiRun:
    """Look up the run's adapters one by one; the row keeps counts, issues and a closing message."""
    reporter = CivitaiReporter(run, echo)
    run.rq_job_id = run.rq_job_id or workers.local_job_id()  # a command runs it here: the janitor can ask
    claimed = CivitaiRun.objects.filter(pk=run.pk, status=CivitaiRun.Status.QUEUED).update(
        status=CivitaiRun.Status.RUNNING, started_at=timezone.now(), phase="choosing", rq_job_id=run.rq_job_id
    )
    run.refresh_from_db()
    if not claimed:
        return run  # cancelled while queued, or already taken
    reporter.notify()
    stop = _CancelCheck(run)
    try:
        client = client or civitai_lookup.make_client(should_stop=stop)
        ids = civitai_lookup.ids_for(run.mode, run.adapter_ids)
        run.total = len(ids)
        run.save(update_fields=["total"])
        reporter("looking up", 0, run.total)
        for done, pk in enumerate(ids, 1):
            if stop():
                raise Cancelled()
            adapter = Adapter.objects.filter(pk=pk).first()
            if adapter is not None:
                outcome = civitai_lookup.lookup(adapter, client)
                _count(run, adapter, outcome)
            run.requests = client.requests
            CivitaiRun.objects.filter(pk=run.pk).update(
                found=run.found, not_found=run.not_found, updates=run.updates, failed=run.failed,
                skipped=run.skipped, requests=run.requests, issues=run.issues,
            )  # fmt: skip
            reporter("looking up", done, run.total)
    except Cancelled:
        run.requests, run.cancel_requested = getattr(client, "requests", run.requests), True
        return _finish(run, CivitaiRun.Status.CANCELLED, f"cancelled after {run.done} of {run.total}", reporter)
    except CivitaiUnreachable as exc:
        return _finish(run, CivitaiRun.Status.FAILED, str(exc), reporter)
    except CivitaiError as exc:  # the feature was switched off meanwhile
        return _finish(run, CivitaiRun.Status.FAILED, str(exc), reporter)
    except Exception as exc:
        _finish(run, CivitaiRun.Status.FAILED, f"Civitai lookup failed: {exc}", reporter)
        raise
    message = (
        f"{run.total} checked: {run.found} found ({run.updates} with a newer version), "
        f"{run.not_found} not on Civitai, {run.failed} failed, {run.skipped} not hashed yet"
    )
    return _finish(run, CivitaiRun.Status.SUCCEEDED, message, reporter)


def _count(run: CivitaiRun, adapter: Adapter, outcome: civitai_lookup.Outcome) -> None:
    if outcome.status == "found":
        run.found += 1
        run.updates += outcome.update
    elif outcome.status == "not_found":
        run.not_found += 1
    elif outcome.status == "failed":
        run.failed += 1
    else:
        run.skipped += 1
    if outcome.message and len(run.issues) < MAX_RECORDED_ISSUES:
        run.issues = [*run.issues, {"adapter_id": adapter.pk, "name": adapter.name, "message": outcome.message}]


def after_scan() -> CivitaiRun | None:
    """LORA_MANAGER_CIVITAI_AUTO: look up adapters never checked (the new ones) after a scan."""
    from django.conf import settings

    if not settings.CIVITAI_AUTO or not civitai_lookup.enabled():
        return None
    if not civitai_lookup.ids_for(CivitaiRun.Mode.MISSING):
        return None
    return start_run(CivitaiRun.Mode.MISSING)
