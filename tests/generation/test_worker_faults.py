"""A work-horse killed mid-generation (SD.Next stand-in hanging on txt2img), with a real forking
``run_worker`` subprocess (tests/standins/held_worker.py) on the test database and Redis."""

from __future__ import annotations

import os
import signal

import pytest

from generation import backends, pipeline, submitting
from generation.models import GenerationJob, JobStatus
from tests.generation.conftest import composition
from tests.standins.held_worker import wait_for

pytestmark = pytest.mark.django_db(transaction=True)
QUEUE = "generation-default"


def test_a_work_horse_killed_mid_generation_fails_the_job_frees_the_backend_and_the_next_job_runs(
    catalog, sdnext, start_worker, redis_conn
):
    sdnext.set_fault("hang", path="/sdapi/v1/txt2img", times=1)  # SD.Next stand-in: the first txt2img never answers
    worker = start_worker(QUEUE, LORA_MANAGER_SDNEXT_URL=sdnext.url)
    job = submitting.submit(composition())
    horse = worker.horse_pid(job.rq_job_id)
    wait_for(
        "the txt2img request",
        lambda: any(r["path"] == "/sdapi/v1/txt2img" for r in sdnext.requests),
        worker=worker,
    )
    assert GenerationJob.objects.get(pk=job.pk).status == JobStatus.RUNNING
    lock_key = backends.run_lock(backends.get("default")).name
    assert redis_conn.get(lock_key) == backends.lock_token(job.pk).encode()  # the horse holds the backend
    os.kill(horse, signal.SIGKILL)

    failed = wait_for(
        "the job to fail",
        lambda: GenerationJob.objects.filter(pk=job.pk, status=JobStatus.FAILED).first(),
        worker=worker,
    )
    assert failed.message == pipeline.WORKER_STOPPED
    assert not redis_conn.exists(lock_key)  # freed at once, not LOCK_TTL_SECONDS later

    following = submitting.submit(composition(prompt="the next one"))
    done = wait_for(
        "the next job",
        lambda: GenerationJob.objects.filter(pk=following.pk, status=JobStatus.SUCCEEDED).first(),
        timeout=60,
        worker=worker,
    )
    assert done.images.count() == 1
    assert sum(1 for r in sdnext.requests if r["path"] == "/sdapi/v1/txt2img") == 2  # the killed one was not resent
