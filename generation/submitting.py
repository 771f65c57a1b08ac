"""Submitting and cancelling generations (re-running: rerunning.py): the functions the views, the command line and
the benchmark all call. The row is written first (QUEUED), the RQ job is enqueued when the
transaction commits, with an id of our own (`generation-<pk>`) so a queued job can be taken back out.
"""

from __future__ import annotations

import time

import django_rq
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone
from rq.callbacks import Callback
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job

from generation import backends, composer, progress, signals
from generation.models import GenerationJob, JobLora, JobStatus
from lora_manager.realtime import activity
from lora_manager.runs import jobs


class SubmitError(Exception):
    """The composition cannot be sent; the message says why (an error from the linter, a bad backend)."""


def create_job_row(composition: composer.Composition, built: composer.Built, user, **fields) -> GenerationJob:
    """The QUEUED row and its LoRAs, for a generation or a delivery (call inside the enqueuing transaction)."""
    for resolved in built.loras:  # keep the names, so a re-run works even if an adapter is deleted later
        resolved.choice.name = resolved.name
    job = GenerationJob.objects.create(
        requested_by=user if user is not None and user.is_authenticated else None,
        prompt=built.prompt,
        negative_prompt=built.negative,
        checkpoint=composition.checkpoint,
        sampler=composition.sampler or "Default",
        steps=composition.steps,
        cfg_scale=composition.cfg_scale,
        width=composition.width,
        height=composition.height,
        seed=composition.seed,
        batch_size=composition.batch_size,
        n_iter=composition.n_iter,
        composition=composition.to_dict(),
        timings={"submitted": time.time()},
        **fields,
    )
    job.rq_job_id = f"generation-{job.pk}"
    job.save(update_fields=["rq_job_id"])
    JobLora.objects.bulk_create(
        JobLora(job=job, adapter=r.adapter, name=r.name, weight=r.choice.weight, position=i)
        for i, r in enumerate(built.loras)
        if r.name
    )
    return job


def enqueue_job(job: GenerationJob, task: str, **options) -> None:
    """Queue ``task`` for a row ``create_job_row`` wrote (a generation or a delivery), on its backend's queue
    under the row's own RQ id, with the failure callback that settles the row (on commit, as ``jobs.enqueue``)."""
    jobs.enqueue(
        backends.queue_name_of(job),
        task,
        job.pk,
        job_id=job.rq_job_id,
        on_failure=Callback("generation.tasks.on_job_failure"),
        result_ttl=3600,
        failure_ttl=7 * 24 * 3600,
        **options,
    )


def submit(
    composition: composer.Composition,
    user=None,
    built: composer.Built | None = None,
    *,
    private: bool = False,
    sweep=None,
    sweep_cell: int | None = None,
) -> GenerationJob:
    try:
        backend = backends.require(composition.backend)
    except backends.BackendNotConfigured as exc:
        raise SubmitError(str(exc)) from exc
    built = built or composer.build(composition)
    if built.blocking:
        raise SubmitError(" ".join(issue.message for issue in built.blocking))
    if not built.prompt.strip():
        raise SubmitError("Write a prompt or add a LoRA first.")
    with transaction.atomic():
        job = create_job_row(
            composition,
            built,
            user,
            backend=backend.name,
            live_preview=composition.live_preview,
            payload=composer.payload(composition, built.prompt, built.negative),
            warnings=[issue.message for issue in built.issues if issue.level == "warning"],
            private=private,
            sweep=sweep,
            sweep_cell=sweep_cell,
        )
        enqueue_job(job, "generation.tasks.generate")
        progress.announce(job.pk)
    return job


def cancel(job_id: int) -> str:
    """Take a queued job out of its queue, or ask the running one to stop; returns what happened."""
    now = timezone.now()
    taken = GenerationJob.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(
        status=JobStatus.CANCELLED, cancel_requested=True, finished_at=now, message="Cancelled before it started."
    )
    job = GenerationJob.objects.get(pk=job_id)
    if taken:
        _remove_from_queue(job)
        transaction.on_commit(activity.broadcast)
        progress.announce(job_id)
        transaction.on_commit(lambda: signals.send_job_finished(job_id))
        return "Cancelled before it started."
    if job.target_id is not None and job.status == JobStatus.RUNNING:
        return "A running delivery cannot be stopped: it ends by itself, at the latest at its timeout."
    asked = GenerationJob.objects.filter(pk=job_id, status=JobStatus.RUNNING, cancel_requested=False).update(
        cancel_requested=True
    )
    if asked:
        progress.announce(job_id)
        return "Stopping: SD.Next is asked to interrupt; finished and partial images are kept."
    if job.status == JobStatus.RUNNING:
        return "Already stopping."
    return f"This job has already {job.get_status_display().lower()}."


def _remove_from_queue(job: GenerationJob) -> None:
    try:
        rq_job = Job.fetch(job.rq_job_id, connection=django_rq.get_connection(backends.queue_name_of(job)))
        rq_job.cancel()
    except (NoSuchJobError, InvalidJobOperation, backends.BackendNotConfigured):
        pass  # already gone, or a worker took it: the pipeline sees CANCELLED and does nothing


def queue_positions() -> tuple[dict[int, int], dict[str, int]]:
    """Position (1 = next) of each queued job within its backend's queue, and queued counts per backend."""
    positions: dict[int, int] = {}
    counts: dict[str, int] = {}
    queued = GenerationJob.objects.filter(status=JobStatus.QUEUED).order_by("backend", "id")
    for pk, backend in queued.values_list("pk", "backend"):
        counts[backend] = counts.get(backend, 0) + 1
        positions[pk] = counts[backend]
    return positions, counts


def active_jobs():
    return (
        GenerationJob.objects.filter(status__in=[JobStatus.RUNNING, JobStatus.QUEUED])
        .select_related("requested_by")
        .annotate(lora_count=Count("loras"))
        .order_by("id")
    )


def recent_jobs(limit: int = 10, user=None):
    finished = Q(status__in=[JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED])
    jobs = GenerationJob.objects.all() if user is None else GenerationJob.objects.visible_to(user)
    return (
        jobs.filter(finished)
        .select_related("requested_by")
        .prefetch_related("images")
        .order_by("-finished_at", "-id")[:limit]
    )
