"""One machinery for tracked runs (scans, embedding runs, archive runs, Civitai lookups): start, execute,
reconcile.

- ``start`` writes the QUEUED row, then enqueues its job by dotted path when the transaction commits
  (domain modules never import ``tasks.py``), with RQ's failure callback ``on_job_failure``.
- ``execute`` claims a QUEUED row (RUNNING), runs the work with a progress reporter, and leaves the
  row SUCCEEDED (or what the work set) or FAILED with the error, which re-raises.
- ``reconcile`` fails every active row whose RQ job is dead: the work-horse was killed, the worker
  is gone (its heartbeats stopped), the job vanished from Redis or RQ failed it. The janitor runs
  every declared reconciler every ``JANITOR_SECONDS`` on RQ's scheduler; ``run_worker`` runs them
  at start; a killed work-horse fails its row at once (``workers.Worker``).

Apps declare their run models (``tracked_runs``) and other reconcilers (``reconcilers``) in
``AppConfig.ready()``; this module loops over what was declared.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import django_rq
from django.apps import apps
from django.db import transaction
from django.utils import timezone
from rq.callbacks import Callback
from rq.exceptions import AbandonedJobError

from lora_manager import outages, realtime
from lora_manager.models import TrackedRun
from lora_manager.realtime import activity
from lora_manager.runs import periodic, workers

log = logging.getLogger(__name__)

Run = TypeVar("Run", bound=TrackedRun)
Work = Callable[[TrackedRun, realtime.RunReporter], None]
FAILURE_CALLBACK = "lora_manager.runs.tracked.on_job_failure"

MESSAGES = {
    "stopped": "The worker stopped before this {noun} finished (it was killed or crashed): {again}.",
    "killed": "The process running this {noun} was killed ({detail}) before it finished: {again}.",
    "lost": "This {noun} was lost from the queue before a worker took it (was Redis emptied or restarted?): {again}.",
    "failed": "The worker could not run this {noun} ({detail}): {again}.",
}


def message(run: TrackedRun, fate: workers.Fate) -> str:
    text = MESSAGES[fate.kind].format(noun=run.noun, again=run.again, detail=fate.detail or "no detail")
    return text.replace(" ()", "")


# -- start ------------------------------------------------------------------------------------------


def start(model: type[Run], *, fail_quietly: bool = False, **fields) -> Run:
    """The QUEUED row now, its RQ job when the transaction commits. Redis is checked first
    (``outages.RedisUnavailable``, a 503: nothing is written); if it refuses the job at commit the row
    is marked FAILED (never a queued row nobody will run) and the error re-raises unless ``fail_quietly``
    (an embedding run asked for by a catalog edit: the edit must succeed anyway)."""
    if not fail_quietly:
        outages.require_redis(django_rq.get_connection(model.queue_name))
    with transaction.atomic():
        run = model.objects.create(**fields)
        run.rq_job_id = f"{model.job_id_prefix}-{run.pk}"
        run.save(update_fields=["rq_job_id"])
        transaction.on_commit(lambda: enqueue(run, fail_quietly=fail_quietly))
    return run


def enqueue(run: TrackedRun, fail_quietly: bool = False) -> None:
    model = type(run)
    try:
        django_rq.get_queue(model.queue_name).enqueue(
            model.job_path,
            run.pk,
            job_id=run.rq_job_id,
            on_failure=Callback(FAILURE_CALLBACK),
            meta={"run_model": model._meta.label},
        )
    except Exception as exc:
        log.warning("cannot queue %s: %s", run, exc)
        fail(run, f"could not queue the job: {exc}")
        if fail_quietly:
            return
        if outages.is_redis_outage(exc):
            raise outages.RedisUnavailable(str(exc)) from exc
        raise
    activity.broadcast()


# -- execute ----------------------------------------------------------------------------------------


def execute(run: Run, work: Work, echo: Callable[[str, int, int], None] | None = None, phase: str = "") -> Run:
    """Run ``work(run, reporter)`` for a QUEUED row; a row no longer QUEUED (settled by the janitor,
    taken by another worker) is returned as it is. The work sets counts and ``message`` on ``run``
    (and may set a final status); the row is written with one update, so a row deleted meanwhile (a
    wiped database) stays deleted."""
    model = type(run)
    run.rq_job_id = run.rq_job_id or workers.local_job_id()  # a command runs it here: the janitor can ask
    now = timezone.now()
    claimed = model.objects.filter(pk=run.pk, status=model.Status.QUEUED).update(
        status=model.Status.RUNNING, started_at=now, phase=phase, rq_job_id=run.rq_job_id
    )
    if not claimed:
        return model.objects.filter(pk=run.pk).first() or run
    run.status, run.started_at, run.phase = model.Status.RUNNING, now, phase
    reporter = realtime.RunReporter(run, echo)
    reporter.notify()
    try:
        work(run, reporter)
    except Exception as exc:
        run.status, run.finished_at = model.Status.FAILED, timezone.now()
        run.message = f"{run.noun[:1].upper()}{run.noun[1:]} failed: {exc}"
        _write(run)
        reporter.notify()
        raise
    if run.status == model.Status.RUNNING:
        run.status = model.Status.SUCCEEDED
    run.finished_at = timezone.now()
    _write(run)
    reporter.notify()
    return run


def _write(run: TrackedRun) -> None:
    fields = {
        field.attname: getattr(run, field.attname)
        for field in run._meta.concrete_fields
        if not field.primary_key and field.name != "created_at"
    }
    type(run).objects.filter(pk=run.pk).update(**fields)


# -- settle what died -------------------------------------------------------------------------------


def fail(run: TrackedRun, text: str) -> bool:
    """Mark an active row FAILED with ``text`` (a row that ended meanwhile keeps its outcome)."""
    model = type(run)
    changed = model.objects.filter(pk=run.pk, status__in=model.ACTIVE).update(
        status=model.Status.FAILED, message=text, finished_at=timezone.now()
    )
    if changed:
        log.warning("%s #%s failed: %s", run.noun, run.pk, text)
        realtime.notify_run(run)
    return bool(changed)


def reconcile(model: type[TrackedRun], quietly: bool = False) -> int:
    """Fail every active row of ``model`` whose RQ job is dead; returns how many. ``quietly``: before
    starting a run, where Redis being down must not stop the start (it reports its own error)."""
    fixed = 0
    try:
        connection = django_rq.get_connection(model.queue_name)
        for run in model.objects.filter(status__in=model.ACTIVE):
            fate = workers.job_fate(
                run.rq_job_id, connection, running=run.status == model.Status.RUNNING, created_at=run.created_at
            )
            if fate is not None and fail(run, message(run, fate)):
                fixed += 1
    except Exception as exc:
        if not quietly:
            raise
        log.warning("cannot reconcile %s rows now: %s", model._meta.label, exc)
    return fixed


def on_job_failure(job, connection, exc_type, exc_value, traceback) -> None:
    """RQ's failure callback of every tracked run's job: a failing job, a work-horse killed
    (``workers.Worker``) or a job abandoned by a dead worker (RQ's registry cleanup)."""
    try:
        model = apps.get_model(job.meta["run_model"])
        run = model.objects.get(pk=int(job.args[0]))
    except Exception:  # noqa: BLE001 - not ours, or the row is gone: nothing to settle
        return
    if exc_type is AbandonedJobError or isinstance(exc_value, AbandonedJobError):
        fate = workers.Fate("stopped")
    elif exc_type is workers.WorkHorseKilled or isinstance(exc_value, workers.WorkHorseKilled):
        fate = workers.Fate("killed", str(exc_value))
    else:
        fate = workers.Fate("failed", str(exc_value)[:300])
    fail(run, message(run, fate))


def reconcilers() -> list[Callable[[], int]]:
    """What the installed apps declared: their run models' ``reconcile`` and their own reconcilers."""
    found: list[Callable[[], int]] = []
    for config in apps.get_app_configs():
        for model in getattr(config, "tracked_runs", ()):
            found.append(lambda model=model: reconcile(model))
        found.extend(getattr(config, "reconcilers", ()))
    return found


def reconcile_all() -> int:
    """Run every declared reconciler; one that fails (Redis down) does not stop the others."""
    fixed = 0
    for reconciler in reconcilers():
        try:
            fixed += reconciler()
        except Exception:
            log.exception("reconciler %s failed", reconciler)
    if fixed:
        try:
            activity.broadcast()
        except Exception:  # noqa: BLE001 - the header catches up on its next update
            log.warning("could not update the activity indicator")
    return fixed


def janitor() -> int:
    """The periodic job (every JANITOR_SECONDS): settle what died, and repair broken periodic chains."""
    fixed = reconcile_all()
    periodic.schedule_all()
    return fixed
