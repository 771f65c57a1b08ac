"""Generation overhead against the SD.Next STAND-IN with instant steps (no model runs: we time our side).

- per-job overhead: submit → SD.Next receiving the txt2img request, and SD.Next answering → the row
  SUCCEEDED (images decoded, stored, thumbnailed), through a real RQ worker waiting on its queue;
- progress latency: the pipeline reading a new /progress value → a logged-in websocket client
  receiving the fragment, through the real reporter, channels_redis and consumer;
- 100 queued jobs drained by one worker with nothing lost.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

import django_rq
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from rq import SimpleWorker
from rq.timeouts import TimerDeathPenalty

from generation import composer, pipeline, submitting
from generation.models import GenerationJob, JobStatus
from generation.progress import JobReporter, ProgressUpdate
from lora_manager.roles import VIEWER, set_role
from tests.standins.sdnext import SDNextStandIn

QUEUE = "generation-default"
STEP = re.compile(r'data-step="(\d+)"')


class ThreadWorker(SimpleWorker):
    """A real RQ worker that can run off the main thread (no signal handlers)."""

    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self) -> None:
        pass


class StampedRequests(list):
    """The stand-in's request log, with the time each request arrived."""

    def append(self, item: dict) -> None:
        item["at"] = time.time()
        super().append(item)


class StampingReporter(JobReporter):
    """The real reporter, remembering when the pipeline read each value it sent."""

    def __init__(self, job_id: int):
        super().__init__(job_id)
        self.read_at: dict[int, float] = {}

    def progress(self, update: ProgressUpdate) -> bool:
        sent = super().progress(update)
        if sent and update.phase == "Inference":
            self.read_at.setdefault(update.step, update.read_at)
        return sent


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def small(**values) -> composer.Composition:
    return composer.Composition(**{"prompt": "benchmark", "steps": 1, "width": 64, "height": 64, "seed": 1, **values})


def wait_final(job_id: int, timeout: float = 30) -> GenerationJob:
    deadline = time.monotonic() + timeout
    while True:
        job = GenerationJob.objects.get(pk=job_id)
        if not job.is_active:
            return job
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job_id} still {job.status} after {timeout} s")
        time.sleep(0.002)


def measure_overhead(standin: SDNextStandIn, jobs: int, created: list[int]) -> dict:
    queue = django_rq.get_queue(QUEUE)
    worker = ThreadWorker([queue], connection=queue.connection)
    thread = threading.Thread(target=worker.work, kwargs={"max_jobs": jobs + 1}, daemon=True)
    thread.start()
    warm = submitting.submit(small())  # the first job pays for imports and connections
    created.append(warm.pk)
    wait_final(warm.pk)
    to_request, to_succeeded = [], []
    for _ in range(jobs):
        before = len(standin.requests)
        submitted = time.time()
        job = submitting.submit(small())
        created.append(job.pk)
        job = wait_final(job.pk)
        if job.status != JobStatus.SUCCEEDED:
            raise RuntimeError(f"job {job.pk} {job.status}: {job.message}")
        request = next(r for r in standin.requests[before:] if r["path"] == "/sdapi/v1/txt2img")
        to_request.append((request["at"] - submitted) * 1000)
        to_succeeded.append((job.timings["finished"] - job.timings["returned"]) * 1000)
    thread.join(30)
    return {
        "jobs": jobs,
        "submit_to_sdnext_ms_p50": round(statistics.median(to_request), 1),
        "submit_to_sdnext_ms_p95": round(percentile(to_request, 0.95), 1),
        "sdnext_return_to_succeeded_ms_p50": round(statistics.median(to_succeeded), 1),
        "sdnext_return_to_succeeded_ms_p95": round(percentile(to_succeeded, 0.95), 1),
    }


def measure_progress_latency(standin: SDNextStandIn, runs: int, steps: int, created: list[int]) -> dict:
    from channels.testing import WebsocketCommunicator

    from lora_manager.asgi import application

    user, _ = get_user_model().objects.get_or_create(username="bench-watcher")
    set_role(user, VIEWER)
    client = Client()
    client.force_login(user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    headers = [(b"origin", b"http://127.0.0.1"), (b"cookie", cookie.encode()), (b"host", b"127.0.0.1")]
    standin.engine.step_delay = 0.05
    latencies: list[float] = []

    async def one_run() -> None:
        job = await asyncio.to_thread(submitting.submit, small(steps=steps))
        created.append(job.pk)
        await asyncio.to_thread(django_rq.get_queue(QUEUE).remove, job.rq_job_id)  # run it here, not via RQ
        ws = WebsocketCommunicator(application, f"/ws/generation/jobs/{job.pk}/", headers=headers)
        connected, _ = await ws.connect()
        if not connected:
            raise RuntimeError("the benchmark's websocket was refused")
        await ws.receive_from(timeout=5)
        reporter = StampingReporter(job.pk)
        received: dict[int, float] = {}
        task = asyncio.create_task(asyncio.to_thread(pipeline.run, job.pk, reporter))
        while True:  # a receive timeout would cancel the consumer: wait for the final panel instead
            message = await ws.receive_from(timeout=30)
            at = time.perf_counter()
            if 'data-status="running"' in message and (match := STEP.search(message)):
                received.setdefault(int(match.group(1)), at)
            if f'id="job-{job.pk}-panel"' in message and ("Succeeded" in message or "Failed" in message):
                break
        await task
        await ws.disconnect()
        latencies.extend((received[s] - reporter.read_at[s]) * 1000 for s in reporter.read_at if s in received)

    for _ in range(runs):
        asyncio.run(one_run())
    user.delete()
    standin.engine.step_delay = 0.0
    return {
        "progress_samples": len(latencies),
        "progress_latency_ms_p50": round(statistics.median(latencies), 1),
        "progress_latency_ms_p95": round(percentile(latencies, 0.95), 1),
        "progress_latency_ms_max": round(max(latencies), 1),
        "progress_poll_s": settings.GENERATION_POLL_SECONDS,
        "target_progress_latency_ms_p95": 100,
    }


def measure_drain(standin: SDNextStandIn, count: int, created: list[int]) -> dict:
    queue = django_rq.get_queue(QUEUE)
    before = sum(1 for r in standin.requests if r["path"] == "/sdapi/v1/txt2img")
    started = time.perf_counter()
    ids = [submitting.submit(small(prompt=f"drain {i}")).pk for i in range(count)]
    created.extend(ids)
    queued_s = time.perf_counter() - started
    queued = queue.count
    started = time.perf_counter()
    ThreadWorker([queue], connection=queue.connection).work(burst=True)
    drained_s = time.perf_counter() - started
    statuses = dict.fromkeys(JobStatus.values, 0)
    for status in GenerationJob.objects.filter(pk__in=ids).values_list("status", flat=True):
        statuses[status] += 1
    sent = sum(1 for r in standin.requests if r["path"] == "/sdapi/v1/txt2img") - before
    return {
        "drain_jobs": count,
        "drain_queued_before_worker": queued,
        "drain_submit_s": round(queued_s, 3),
        "drain_s": round(drained_s, 3),
        "drain_jobs_per_s": round(count / drained_s, 1),
        "drain_succeeded": statuses[JobStatus.SUCCEEDED],
        "drain_lost_or_failed": count - statuses[JobStatus.SUCCEEDED],
        "drain_txt2img_requests": sent,
        "drain_left_in_queue": queue.count,
    }


def run(jobs: int = 20, progress_runs: int = 2, drain: int = 100, progress_steps: int = 60) -> dict:
    media = Path(tempfile.mkdtemp(prefix="lm-bench-media-"))
    names = ("SDNEXT_BACKENDS", "MEDIA_ROOT", "GENERATION_POLL_SECONDS")
    saved = {name: getattr(settings, name) for name in names if hasattr(settings, name)}
    standin = SDNextStandIn(step_delay=0.0)
    standin.requests = StampedRequests()
    standin.start()
    settings.SDNEXT_BACKENDS = {"default": {"URL": standin.url, "USER": "", "PASSWORD": ""}}
    settings.MEDIA_ROOT = media
    settings.GENERATION_POLL_SECONDS = 0.25  # 4 polls/s: SD.Next allows 5 requests/s per endpoint
    django_rq.get_queue(QUEUE).empty()
    created: list[int] = []
    try:
        result = {
            **measure_overhead(standin, jobs, created),
            **measure_progress_latency(standin, progress_runs, progress_steps, created),
            **measure_drain(standin, drain, created),
        }
    finally:
        standin.stop()
        GenerationJob.objects.filter(pk__in=created).delete()
        shutil.rmtree(media, ignore_errors=True)
        for name in names:
            if name in saved:
                setattr(settings, name, saved[name])
            else:
                delattr(settings, name)
    return {**result, "db_engine": connection.vendor, "sdnext": "stand-in, instant steps"}
