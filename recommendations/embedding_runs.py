"""Embedding as a tracked run: the row users watch, debounced requests, progress as it goes.

Scans and edits call ``request_embedding()``. While a run is queued, further requests join it, so a
bulk edit of 5,000 adapters (or 5,000 single edits) is one job; a request that arrives while a run
is already running queues exactly one follow-up run, which will see the newer edits.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import django_rq
from django.db import transaction
from django.utils import timezone

from lora_manager import activity, realtime
from recommendations import sync
from recommendations.models import EmbeddingRun

log = logging.getLogger(__name__)

EMBED_GROUP = "embedding.{pk}"
QUEUE = "embeddings"
_T = TypeVar("_T")
LOST_AFTER = timedelta(minutes=2)  # a queued row whose RQ job vanished (Redis flushed, enqueue failed)


class EmbedReporter(realtime.RunReporter):
    group, event = EMBED_GROUP, "embedding.progress"


def latest_run() -> EmbeddingRun | None:
    return EmbeddingRun.objects.order_by("-created_at", "-id").first()


def _job_is_lost(run: EmbeddingRun) -> bool:
    """A queued row older than LOST_AFTER whose RQ job no longer exists will never run."""
    if timezone.now() - run.created_at < LOST_AFTER:
        return False
    try:
        from rq.job import Job

        return not Job.exists(run.rq_job_id, connection=django_rq.get_connection(QUEUE))
    except Exception:  # noqa: BLE001 - Redis down: we cannot tell, keep the row
        return False


def _enqueue(run_id: int, job_id: str) -> None:
    """On commit; a Redis failure marks the run failed instead of failing the edit that asked for it."""
    from recommendations.tasks import embed_job

    try:
        django_rq.get_queue(QUEUE).enqueue(embed_job, run_id, job_id=job_id)
    except Exception as exc:  # noqa: BLE001 - the catalog edit must succeed even when Redis is down
        log.warning("cannot queue embedding run %s: %s", run_id, exc)
        EmbeddingRun.objects.filter(pk=run_id, status=EmbeddingRun.Status.QUEUED).update(
            status=EmbeddingRun.Status.FAILED, message=f"could not queue the job: {exc}", finished_at=timezone.now()
        )
        return
    activity.broadcast()


def request_embedding(reason: str = "", user=None, rebuild: bool = False) -> EmbeddingRun:
    """Ask for the library to be (re-)embedded soon: joins a queued run, else queues one (on commit)."""
    with transaction.atomic():
        queued = EmbeddingRun.objects.filter(status=EmbeddingRun.Status.QUEUED).order_by("created_at").first()
        if queued is not None and _job_is_lost(queued):
            queued.status, queued.finished_at = EmbeddingRun.Status.FAILED, timezone.now()
            queued.message = "its job was lost before a worker took it; queued again"
            queued.save(update_fields=["status", "finished_at", "message"])
            queued = None
        if queued is not None:
            if rebuild and not queued.rebuild:
                queued.rebuild = True
                queued.save(update_fields=["rebuild"])
            return queued
        run = EmbeddingRun.objects.create(reason=reason[:100], requested_by=user, rebuild=rebuild)
        run.rq_job_id = f"embed-{run.pk}"
        run.save(update_fields=["rq_job_id"])
        transaction.on_commit(lambda: _enqueue(run.pk, run.rq_job_id))
    return run


def request_embedding_safely(reason: str) -> None:
    """The hook scans and bulk edits call: never lets a recommendations problem fail the catalog work."""
    try:
        request_embedding(reason=reason)
    except Exception as exc:  # noqa: BLE001 - recommendations are optional; the edit already happened
        log.warning("could not request an embedding run after %s: %s", reason, exc)


def execute(run: EmbeddingRun, echo: Callable[[str, int, int], None] | None = None) -> EmbeddingRun:
    """Run ``sync.sync_library`` as the row says; on error the row says what went wrong and the error re-raises."""
    reporter = EmbedReporter(run, echo)
    run.status, run.started_at, run.phase = EmbeddingRun.Status.RUNNING, timezone.now(), "starting"
    run.save(update_fields=["status", "started_at", "phase"])
    reporter.notify()
    try:
        result = sync.sync_library(rebuild=run.rebuild, progress=reporter)
    except Exception as exc:
        run.status, run.finished_at = EmbeddingRun.Status.FAILED, timezone.now()
        run.message = f"embedding failed: {exc}"
        EmbeddingRun.objects.filter(pk=run.pk).update(
            status=run.status, finished_at=run.finished_at, message=run.message
        )
        reporter.notify()
        raise
    run.embedded, run.unchanged, run.indexed = result["embedded"], result["unchanged"], result["indexed"]
    run.index_kind, run.phase = result["index_kind"], "done"
    run.status, run.finished_at = EmbeddingRun.Status.SUCCEEDED, timezone.now()
    run.done = run.total = run.embedded + run.unchanged
    run.message = (
        f"{run.embedded} embedded, {run.unchanged} unchanged; index: {run.indexed} adapters "
        f"({run.index_kind}, {result['index_action']}) in {result['seconds']:.1f} s"
    )
    fields = ["embedded", "unchanged", "indexed", "index_kind", "phase", "status", "finished_at", "done", "total"]
    # An update, never an insert: a row deleted meanwhile (a wiped database) stays deleted.
    EmbeddingRun.objects.filter(pk=run.pk).update(message=run.message, **{f: getattr(run, f) for f in fields})
    reporter.notify()
    return run


def reconcile_stale_runs() -> int:
    """Rows left RUNNING by a killed worker (their job is no longer started) become FAILED."""
    queue = django_rq.get_queue(QUEUE)
    alive = set(queue.started_job_registry.get_job_ids()) | set(queue.get_job_ids())
    fixed = 0
    for run in EmbeddingRun.objects.filter(status=EmbeddingRun.Status.RUNNING):
        if run.rq_job_id in alive:
            continue
        run.status, run.finished_at = EmbeddingRun.Status.FAILED, timezone.now()
        run.message = "the worker stopped before this run finished; it runs again after the next scan or edit"
        run.save(update_fields=["status", "finished_at", "message"])
        fixed += 1
    return fixed


def reembeds(func: Callable[..., _T]) -> Callable[..., _T]:
    """Decorator for catalog edits that change what is embedded or filtered (tags, base model, active):
    when the edit changed something (a truthy result), ask for an embedding run."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> _T:
        result = func(*args, **kwargs)
        if result:
            request_embedding_safely(f"edit: {func.__name__}")
        return result

    return wrapper
