"""One generation, start to finish: SD.Next's blocking txt2img on one thread, /progress polled on this one.

SD.Next holds the txt2img request until the job ends and only reports progress when polled
(docs/sdnext-contract.md §4, §7), so the request runs on a helper thread with its own client while this thread
polls about twice a second, passes each reading to the reporter, watches for a cancel request
(then sends /interrupt and still waits for the answer: SD.Next returns what it finished) and keeps
the backend lock alive. The txt2img is never resent once it may have started.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import PurePath

from django.db import transaction
from django.db.models import F
from django.utils import timezone
from redis.exceptions import LockError
from rq.timeouts import JobTimeoutException

from adapters.models import Adapter
from generation import backends, conf, storage
from generation.models import GenerationJob, JobLora, JobStatus
from generation.progress import JobReporter, ProgressUpdate, Reporter
from generation.sdnext import SDNextBadResponse, SDNextClient, SDNextError, SDNextTimeout, Txt2ImgResult

logger = logging.getLogger(__name__)

WORKER_STOPPED = (
    "The worker stopped while this job was running (killed or crashed). It was not resent, because "
    "SD.Next may already have run it: re-run it if you still want it."
)
WAITING = "waiting for SD.Next"
ABANDONED = (
    "Cancelled. SD.Next did not answer after it was asked to interrupt, so the worker stopped waiting for it "
    "(nothing was resent); if SD.Next is stuck, restart it."
)
INTERRUPT_AGAIN_SECONDS = 2.0  # a late phase can reset SD.Next's interrupt flag (§8): say it again


@dataclass
class _Call:
    """The txt2img running on the helper thread."""

    done: threading.Event = field(default_factory=threading.Event)
    result: Txt2ImgResult | None = None
    error: BaseException | None = None
    returned_at: float = 0.0


def mark_running(job_id: int) -> GenerationJob | None:
    """QUEUED → RUNNING, or None when the job is not QUEUED (cancelled meanwhile, or already started once)."""
    now = timezone.now()
    if not GenerationJob.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(
        status=JobStatus.RUNNING, started_at=now, phase="starting"
    ):
        return None
    job = GenerationJob.objects.get(pk=job_id)
    job.timings = {**job.timings, "started": time.time()}
    job.save(update_fields=["timings"])
    return job


def fail_started_twice(job_id: int) -> bool:
    """A RUNNING row picked up again (a requeued RQ job): never run a generation twice."""
    return bool(
        GenerationJob.objects.filter(pk=job_id, status=JobStatus.RUNNING).update(
            status=JobStatus.FAILED, finished_at=timezone.now(), message=WORKER_STOPPED
        )
    )


def run(job_id: int, reporter: Reporter | None = None, lock=None) -> GenerationJob:
    """Run a QUEUED job. Returns the final row; re-raises the error after recording a FAILED job."""
    job = mark_running(job_id)
    if job is None:
        if fail_started_twice(job_id):
            _announce(reporter, job_id)
        return GenerationJob.objects.get(pk=job_id)
    reporter = reporter or JobReporter(job.pk)
    reporter.status()
    try:
        backend = backends.require(job.backend)
        result, error, cancelled = _generate(job, backend, reporter, lock)
        if result is None and error is None:  # cancelled, and SD.Next never answered: abandoned
            return _finish(job, reporter, JobStatus.CANCELLED, ABANDONED)
        if error is not None:
            if cancelled and isinstance(error, SDNextBadResponse) and error.status == 200:
                return _finish(job, reporter, JobStatus.CANCELLED, "Cancelled before any image was finished.")
            raise error
        assert result is not None
        return _store(job, reporter, result, cancelled)
    except Exception as exc:
        if isinstance(exc, JobTimeoutException):
            _interrupt(backends.quick_client(backends.get(job.backend)), job)
        _finish(job, reporter, JobStatus.FAILED, _failure_message(job, exc))
        raise


def _generate(
    job: GenerationJob, backend: backends.Backend, reporter: Reporter, lock
) -> tuple[Txt2ImgResult | None, BaseException | None, bool]:
    call = _Call()
    generator = backends.client(backend)
    poller = backends.client(backend, read_timeout=5.0, retries=0)

    def send() -> None:
        try:
            call.result = generator.txt2img(job.payload)
        except BaseException as exc:  # noqa: BLE001 - handed to the polling thread, which decides
            call.error = exc
        finally:
            call.returned_at = time.time()
            call.done.set()

    job.timings["sent"] = time.time()
    GenerationJob.objects.filter(pk=job.pk).update(timings=job.timings, phase=WAITING)
    thread = threading.Thread(target=send, name=f"txt2img-{job.pk}", daemon=True)
    thread.start()
    cancelled, last_interrupt, last_preview, started = False, 0.0, float("-inf"), False
    cancelled_at = 0.0
    while not call.done.wait(conf.poll_seconds()):
        if lock is not None:
            _keep(lock, job)
        if not cancelled and GenerationJob.objects.filter(pk=job.pk, cancel_requested=True).exists():
            cancelled, cancelled_at = True, time.monotonic()
            reporter.cancelling = True
        if cancelled and time.monotonic() - cancelled_at >= conf.cancel_grace_seconds():
            # SD.Next did not answer the interrupt: stop waiting (the daemon thread is left behind and ends
            # with the work-horse); the request is never resent.
            logger.warning("job %s: no answer from SD.Next after the interrupt; stopped waiting", job.pk)
            _interrupt(poller, job)
            return None, None, True
        if cancelled and time.monotonic() - last_interrupt >= INTERRUPT_AGAIN_SECONDS:
            last_interrupt = time.monotonic()
            _interrupt(poller, job)
        with_preview = job.live_preview and time.monotonic() - last_preview >= conf.preview_seconds()
        update = _read_progress(poller, with_preview)
        if update is None or (started and update.phase == WAITING):
            continue  # idle between phases or while SD.Next encodes the answer: keep showing the last step
        started = started or update.phase != WAITING
        if update.preview:
            last_preview = time.monotonic()
        reporter.progress(update)
    thread.join()
    job.timings["returned"] = call.returned_at
    if isinstance(call.error, SDNextTimeout):
        _interrupt(poller, job)  # free SD.Next for the next job if it is still busy with this one
    if call.error is not None and not isinstance(call.error, Exception):
        raise call.error  # KeyboardInterrupt, SystemExit
    return call.result, call.error, cancelled  # a cancel that came after SD.Next answered changes nothing


def _keep(lock, job: GenerationJob) -> None:
    try:
        lock.extend(backends.LOCK_TTL_SECONDS, replace_ttl=True)
    except LockError:  # expired (this thread stalled for a minute): carry on, the job itself is fine
        logger.warning("job %s lost its backend lock", job.pk)


def _interrupt(client: SDNextClient, job: GenerationJob) -> None:
    try:
        client.interrupt()
    except SDNextError as exc:
        logger.warning("could not interrupt SD.Next for job %s: %s", job.pk, exc)


def _read_progress(client: SDNextClient, with_preview: bool) -> ProgressUpdate | None:
    """One /progress reading; None when it failed (progress is a hint: a failed poll never fails the job)."""
    try:
        data = client.progress(with_preview=with_preview)
    except SDNextError as exc:
        logger.info("progress poll failed: %s", exc)
        return None
    read_at = time.perf_counter()
    state = data.get("state") if isinstance(data.get("state"), dict) else {}
    phase = str(state.get("job") or "")
    preview = data.get("current_image") if with_preview else None
    try:
        fraction = float(data.get("progress") or 0.0)
        eta = float(data["eta_relative"]) if data.get("eta_relative") not in (None, "") else None
        step, steps = int(state.get("sampling_step") or 0), int(state.get("sampling_steps") or 0)
        pass_no, passes = int(state.get("job_no") or 0) + 1, int(state.get("job_count") or 0)
    except (TypeError, ValueError):
        return None
    if not phase:  # idle: before our request holds SD.Next's lock, or between phases
        return ProgressUpdate(WAITING, 0, steps, 0.0, None, 0, 0, read_at=read_at)
    return ProgressUpdate(
        phase,
        min(step, steps) if steps else step,
        steps,
        max(0.0, min(1.0, fraction)),
        max(0.0, eta) if eta is not None else None,
        pass_no,
        passes,
        preview=_data_url(preview) if isinstance(preview, str) and preview else "",
        read_at=read_at,
    )


def _data_url(encoded: str) -> str:
    if encoded.startswith("data:"):
        return encoded
    head = encoded[:8]
    kind = "png" if head.startswith("iVBOR") else "webp" if head.startswith("UklGR") else "jpeg"
    return f"data:image/{kind};base64,{encoded}"


def _store(job: GenerationJob, reporter: Reporter, result: Txt2ImgResult, cancelled: bool) -> GenerationJob:
    job.refresh_from_db(fields=["step", "steps_total"])
    images, warnings = storage.store_images(job, result.images, result.seeds, result.infotexts, partial=cancelled)
    applied = {_plain(name) for name in result.loras_applied}
    loras = list(JobLora.objects.filter(job=job))
    for lora in loras:
        lora.applied = _plain(lora.name) in applied
    JobLora.objects.bulk_update(loras, ["applied"])
    skipped = [lora.name for lora in loras if not lora.applied]
    if skipped:
        warnings.insert(
            0,
            f"SD.Next did not apply {', '.join(skipped)}: it does not know "
            f"{'this LoRA' if len(skipped) == 1 else 'these LoRAs'} (refresh the LoRA list, or copy the "
            "file into SD.Next's LoRA folder).",
        )
    used = [lora.adapter_id for lora in loras if lora.applied and lora.adapter_id]
    if used:
        Adapter.objects.filter(pk__in=set(used)).update(usage_count=F("usage_count") + 1, last_used_at=timezone.now())
    job.info, job.loras_applied, job.seeds = result.info, result.loras_applied, result.seeds
    job.infotext = result.infotexts[0] if result.infotexts else ""
    job.warnings = [*job.warnings, *warnings]
    count = f"{len(images)} image{'s' if len(images) != 1 else ''}"
    if cancelled:
        kept = f"kept {count}" if images else "no image was finished"
        return _finish(job, reporter, JobStatus.CANCELLED, f"Cancelled at step {job.step or '?'}; {kept}.")
    took = time.time() - job.timings.get("started", time.time())
    return _finish(job, reporter, JobStatus.SUCCEEDED, f"{count} in {took:.1f} s.")


def _plain(name: str) -> str:
    """Compare LoRA names the way SD.Next resolves them: last path part, '.' as '_', any case."""
    return PurePath(name).name.replace(".", "_").lower()


def _finish(job: GenerationJob, reporter: Reporter, status: str, message: str) -> GenerationJob:
    job.refresh_from_db(fields=["step", "steps_total", "progress", "phase", "cancel_requested"])
    job.status, job.message, job.finished_at = status, message, timezone.now()
    if status == JobStatus.SUCCEEDED:
        job.steps_total = job.steps_total or job.steps
        job.progress, job.step = 1.0, job.steps_total
    job.phase, job.eta_seconds = "", None
    job.timings = {**job.timings, "finished": time.time()}
    with transaction.atomic():
        job.save()
    _announce(reporter, job.pk)
    return job


def _announce(reporter: Reporter | None, job_id: int) -> None:
    (reporter or JobReporter(job_id)).status()


def _failure_message(job: GenerationJob, exc: Exception) -> str:
    if isinstance(exc, JobTimeoutException):
        return "The job ran past the worker's time limit and was stopped; SD.Next was asked to interrupt it."
    if isinstance(exc, backends.BackendNotConfigured | SDNextError):
        message = str(exc)
        if isinstance(exc, SDNextBadResponse) and exc.status == 200 and job.checkpoint:
            message += f" Check that the checkpoint '{job.checkpoint}' exists on SD.Next."
        return message
    logger.exception("generation %s failed", job.pk)
    return f"Internal error: {type(exc).__name__}: {exc}. See the worker's log."
