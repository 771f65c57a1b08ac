"""generation.signals.job_finished: whoever ends a job (the RQ job, its failure callback, a cancel before
it started) sends it, and the sweep receives it to draw its grid; a failing receiver changes nothing."""

from __future__ import annotations

import pytest
from rq import Queue

from adapters.models import Adapter
from generation import signals, submitting, tasks
from generation.models import GenerationJob, JobStatus, Sweep
from tests.generation.results_factory import finished_job

pytestmark = pytest.mark.django_db


def sweep_of(*jobs: GenerationJob) -> Sweep:
    adapter = Adapter.objects.create(name="lighthouse_lora")
    sweep = Sweep.objects.create(
        adapter=adapter,
        labels=[str(i) for i in range(len(jobs))],
        cells=[{"adapter_id": adapter.pk, "name": adapter.name, "weight": i / 2} for i in range(len(jobs))],
        prompt="a lighthouse",
        seed=7,
    )
    for cell, job in enumerate(jobs):
        GenerationJob.objects.filter(pk=job.pk).update(sweep=sweep, sweep_cell=cell)
    return sweep


def test_the_sweep_receives_job_finished_and_draws_its_grid_after_the_last_cell(lora_root):
    done = finished_job()
    last = GenerationJob.objects.create(status=JobStatus.RUNNING, prompt="a lighthouse")
    sweep = sweep_of(done, last)
    signals.send_job_finished(done.pk)  # a cell is still running: nothing to draw yet
    sweep.refresh_from_db()
    assert sweep.finished_at is None
    GenerationJob.objects.filter(pk=last.pk).update(status=JobStatus.FAILED)
    signals.send_job_finished(last.pk)
    sweep.refresh_from_db()
    assert sweep.finished_at is not None and sweep.grid and sweep.message == "1 of 2 cells have an image."


def test_cancelling_the_last_queued_cell_finishes_the_sweep_on_commit(
    lora_root, redis_conn, django_capture_on_commit_callbacks
):
    done = finished_job()
    queued = GenerationJob.objects.create(status=JobStatus.QUEUED, prompt="a lighthouse", rq_job_id="generation-x")
    sweep = sweep_of(done, queued)
    with django_capture_on_commit_callbacks(execute=True):
        assert submitting.cancel(queued.pk) == "Cancelled before it started."
        assert Sweep.objects.get(pk=sweep.pk).finished_at is None  # only once the cancel is committed
    sweep.refresh_from_db()
    assert sweep.finished_at is not None and sweep.message == "1 of 2 cells have an image."


def test_the_rq_failure_callback_sends_job_finished(lora_root, redis_conn):
    done = finished_job()
    running = GenerationJob.objects.create(status=JobStatus.RUNNING, prompt="a lighthouse")
    sweep = sweep_of(done, running)
    rq_job = Queue("generation-default", connection=redis_conn).enqueue("generation.tasks.generate", running.pk)
    tasks.on_job_failure(rq_job, redis_conn, RuntimeError, RuntimeError("boom"), None)
    running.refresh_from_db()
    sweep.refresh_from_db()
    assert running.status == JobStatus.FAILED and "boom" in running.message
    assert sweep.finished_at is not None


def test_a_failing_receiver_neither_raises_nor_stops_the_others(lora_root):
    calls = []

    def broken(sender, job_id, **kwargs):
        calls.append(job_id)
        raise RuntimeError("receiver bug")

    done = finished_job()
    sweep = sweep_of(done)
    signals.job_finished.connect(broken, dispatch_uid="test.broken")
    try:
        signals.send_job_finished(done.pk)
    finally:
        signals.job_finished.disconnect(dispatch_uid="test.broken")
    sweep.refresh_from_db()
    assert calls == [done.pk] and sweep.finished_at is not None
