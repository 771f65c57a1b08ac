"""RQ jobs of the catalog. They take ids and call the domain functions."""

from __future__ import annotations

from datetime import timedelta

import django_rq
from django.conf import settings

from adapters import civitai_runs, identity, scan_runs, thumbnails
from adapters.models import CivitaiRun, ScanRun
from lora_manager.runs.jobs import tracked


@tracked
def scan_job(run_id: int) -> dict:
    run = scan_runs.execute(ScanRun.objects.get(pk=run_id))
    if run.status == ScanRun.Status.SUCCEEDED:  # the scan is done; previews are filled in behind it
        django_rq.get_queue("default").enqueue(thumbnails_job)
    if run.postponed:  # files still being written: hash them once they have settled
        delay = timedelta(seconds=scan_runs.SETTLE_SECONDS * 2)
        django_rq.get_queue("default").enqueue_in(delay, hash_job)
    return run.summary()


@tracked
def civitai_job(run_id: int) -> dict:
    return civitai_runs.execute(CivitaiRun.objects.get(pk=run_id)).summary()


@tracked
def hash_job(adapter_ids: list[int] | None = None) -> dict:
    return identity.hash_pending(adapter_ids, workers=settings.HASH_WORKERS)


@tracked
def thumbnails_job(adapter_ids: list[int] | None = None) -> dict:
    """Thumbnails of the previews still without one, so the gallery's first view does not decode them."""
    return {"made": thumbnails.make_missing_thumbnails(adapter_ids)}
