"""Jobs through a real RQ worker, Redis and the channels_redis layer: progress reaches a websocket client,
cancel both ways, and reconciliation of rows a killed worker left behind."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import django_rq
import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.utils import timezone
from rq.job import Job
from rq.worker import Worker

from generation import pipeline, reconciling, submitting
from generation.models import GenerationJob, JobStatus
from lora_manager.asgi import application
from tests.e2e.conftest import database_url
from tests.generation.conftest import composition
from tests.lora_manager.test_realtime import receive_until, session_headers

pytestmark = pytest.mark.django_db(transaction=True)
QUEUE = "generation-default"
BASE_DIR = Path(__file__).resolve().parents[2]


def txt2img_count(standin) -> int:
    return sum(1 for r in standin.requests if r["path"] == "/sdapi/v1/txt2img")


def test_a_worker_runs_a_job_and_websocket_clients_see_progress_through_redis(
    client, viewer, catalog, sdnext, run_worker
):
    sdnext.engine.step_delay = 0.03
    settings.GENERATION_POLL_SECONDS = 0.05
    headers = session_headers(client, viewer)

    async def scenario():
        job = await asyncio.to_thread(submitting.submit, composition(steps=20))
        detail = WebsocketCommunicator(application, f"/ws/generation/jobs/{job.pk}/", headers=headers)
        listing = WebsocketCommunicator(application, "/ws/generation/jobs/", headers=headers)
        assert (await detail.connect())[0] and (await listing.connect())[0]
        first = await detail.receive_from(timeout=5)
        assert f'id="job-{job.pk}-panel"' in first and "Queued" in first
        await receive_until(listing, f'id="job-{job.pk}-row"')
        worker = asyncio.create_task(asyncio.to_thread(run_worker, QUEUE))
        steps = []
        while True:
            message = await detail.receive_from(timeout=10)
            if f'id="job-{job.pk}-progress"' in message and 'data-status="running"' in message:
                steps.append(int(re.search(r'data-step="(\d+)"', message).group(1)))
            if "Succeeded" in message and f'id="job-{job.pk}-panel"' in message:
                break
        await worker
        assert len(steps) >= 3 and steps == sorted(steps) and max(steps) > 0, steps
        await receive_until(listing, f'id="recent-job-{job.pk}"')
        await detail.disconnect()
        await listing.disconnect()
        return job

    job = asyncio.run(scenario())
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and job.images.count() == 1


def test_cancel_a_queued_job_takes_it_out_of_the_queue(catalog, sdnext, run_worker):
    first = submitting.submit(composition())
    second = submitting.submit(composition(prompt="second"))
    queue = django_rq.get_queue(QUEUE)
    assert queue.count == 2
    assert submitting.cancel(second.pk) == "Cancelled before it started."
    assert queue.count == 1 and Job.fetch(second.rq_job_id, connection=queue.connection).is_canceled
    run_worker(QUEUE)
    first.refresh_from_db(), second.refresh_from_db()
    assert (first.status, second.status) == (JobStatus.SUCCEEDED, JobStatus.CANCELLED)
    assert txt2img_count(sdnext) == 1
    assert submitting.cancel(first.pk) == "This job has already succeeded."


def test_cancel_a_running_job_through_the_worker_keeps_partial_images(catalog, sdnext, run_worker):
    sdnext.engine.step_delay = 0.05
    job = submitting.submit(composition(steps=100))
    worker = threading.Thread(target=run_worker, args=(QUEUE,))
    worker.start()
    assert sdnext.txt2img_started.wait(10)
    time.sleep(0.3)
    assert submitting.cancel(job.pk).startswith("Stopping")
    assert submitting.cancel(job.pk) == "Already stopping."
    worker.join(15)
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and job.images.get().partial
    assert 0 < job.step < 100


def test_reconcile_rows_whose_rq_job_is_gone_or_over(catalog, sdnext, redis_conn):
    running = submitting.submit(composition())
    queued = submitting.submit(composition())
    fresh = submitting.submit(composition())
    old = timezone.now() - timedelta(minutes=5)
    GenerationJob.objects.filter(pk__in=[running.pk, queued.pk]).update(created_at=old)
    GenerationJob.objects.filter(pk=running.pk).update(status=JobStatus.RUNNING)
    redis_conn.flushdb()  # Redis restarted empty
    assert reconciling.reconcile_stale_jobs() == 2
    running.refresh_from_db(), queued.refresh_from_db(), fresh.refresh_from_db()
    assert (running.status, running.message) == (JobStatus.FAILED, pipeline.WORKER_STOPPED)
    assert queued.status == JobStatus.FAILED and queued.message == reconciling.LOST
    assert fresh.status == JobStatus.QUEUED  # its enqueue may still be on its way


def test_reconcile_asks_whether_the_worker_holding_a_started_job_still_runs(catalog, sdnext, redis_conn):
    job = submitting.submit(composition())
    queue = django_rq.get_queue(QUEUE)
    rq_job = Job.fetch(job.rq_job_id, connection=queue.connection)
    worker = Worker([queue], connection=queue.connection, name="gone-worker")
    worker.register_birth()
    rq_job.set_status("started")
    rq_job.worker_name = worker.name
    rq_job.save()
    GenerationJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)
    assert reconciling.reconcile_stale_jobs() == 0  # its worker is this very process: alive
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    redis_conn.hset(worker.key, "pid", int(dead.stdout))
    assert reconciling.reconcile_stale_jobs() == 1
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and job.message == pipeline.WORKER_STOPPED


def test_a_worker_killed_mid_job_leaves_a_row_that_reconciliation_fails(catalog, sdnext, redis_conn, tmp_path):
    """A real worker process is SIGKILLed while SD.Next generates; the next start settles its row."""
    sdnext.engine.step_delay = 0.05
    env = {
        **os.environ,
        "LORA_MANAGER_DATABASE_URL": database_url(),
        "LORA_MANAGER_REDIS_URL": settings.REDIS_URL,
        "LORA_MANAGER_DATA_DIR": str(settings.DATA_DIR),
        "LORA_MANAGER_SDNEXT_URL": sdnext.url,
        "LORA_MANAGER_RESCAN_INTERVAL_MINUTES": "0",
        "DJANGO_SETTINGS_MODULE": "lora_manager.settings",
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    job = submitting.submit(composition(steps=150))
    log = (tmp_path / "worker.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "manage.py", "rqworker", QUEUE, "--worker-class", "rq.worker.SimpleWorker"],
        cwd=BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        assert sdnext.txt2img_started.wait(30), (tmp_path / "worker.log").read_text()
        deadline = time.monotonic() + 10
        while GenerationJob.objects.get(pk=job.pk).status != JobStatus.RUNNING:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        sdnext.engine.state.interrupt()
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING  # nobody was left to say otherwise
    assert reconciling.reconcile_stale_jobs() == 1
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "was not resent" in job.message
    assert txt2img_count(sdnext) == 1


def test_taking_the_backend_settles_other_running_rows(catalog, sdnext, run_worker):
    stale = submitting.submit(composition())
    GenerationJob.objects.filter(pk=stale.pk).update(status=JobStatus.RUNNING)
    django_rq.get_queue(QUEUE).remove(stale.rq_job_id)
    job = submitting.submit(composition())
    run_worker(QUEUE)
    stale.refresh_from_db(), job.refresh_from_db()
    assert stale.status == JobStatus.FAILED and job.status == JobStatus.SUCCEEDED


def test_a_job_waits_for_its_backend_and_gives_up_when_cancelled(catalog, sdnext, run_worker):
    from generation import backends

    lock = backends.run_lock(backends.get("default"))
    assert lock.acquire(blocking=False)
    job = submitting.submit(composition())
    worker = threading.Thread(target=run_worker, args=(QUEUE,))
    worker.start()
    time.sleep(0.3)
    assert GenerationJob.objects.get(pk=job.pk).status == JobStatus.QUEUED  # waiting for the backend
    submitting.cancel(job.pk)
    worker.join(10)
    lock.release()
    assert not worker.is_alive() and txt2img_count(sdnext) == 0
