"""Other deliveries of a composed prompt: an HTTP webhook or a command, run as ordinary generation jobs.

Targets (``DeliveryTarget``) are configured by admins in the Django admin; a request only names one
by id, never a URL or a program. A delivery is a ``GenerationJob`` with ``target`` set: the same
row, queue machinery (RQ job ``generation-<pk>`` on the ``default`` queue), progress events, jobs
page, history, cancel and re-run. What the target answered is recorded: HTTP status or exit code in
``result_code``, the body or output (capped) in ``output``.

Webhook: POST of a JSON document, redirects never followed, connection errors retried (the request
never reached the server), a timeout or an answer is never resent. Command: an argument list run
without a shell, in its own process group (killed as a whole at the timeout), output capped.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time

import requests
from django.db import transaction
from django.utils import timezone

from generation import composer, pipeline, progress, submitting
from generation.models import DeliveryTarget, GenerationJob, JobLora, JobStatus

MAX_TIMEOUT = 3600
PLACEHOLDERS = ("{prompt}", "{negative_prompt}", "{json}", "{job}")
CHUNK = 64 * 1024


class DeliveryError(Exception):
    """The delivery cannot be queued or failed; the message says why."""


def enabled_targets() -> list[DeliveryTarget]:
    return list(DeliveryTarget.objects.filter(enabled=True))


def check_target(target: DeliveryTarget) -> None:
    """A target that cannot work is refused before anything is queued (admins may save half-done ones)."""
    if not target.enabled:
        raise DeliveryError(f"The delivery target “{target.name}” is disabled.")
    if target.kind == DeliveryTarget.Kind.WEBHOOK and not target.url.startswith(("http://", "https://")):
        raise DeliveryError(f"The webhook “{target.name}” has no http(s) URL: an admin must set one.")
    if target.kind == DeliveryTarget.Kind.COMMAND and not (
        isinstance(target.arguments, list) and target.arguments and all(isinstance(a, str) for a in target.arguments)
    ):
        raise DeliveryError(f"The command “{target.name}” has no program: an admin must set its arguments.")
    if not 1 <= target.timeout_seconds <= MAX_TIMEOUT:
        raise DeliveryError(f"The timeout of “{target.name}” must be 1 to {MAX_TIMEOUT} seconds.")


def submit(
    composition: composer.Composition, target: DeliveryTarget, user=None, private: bool = False
) -> GenerationJob:
    """Queue a delivery of the composition to ``target``: the row first, the RQ job on commit."""
    check_target(target)
    built = composer.build(composition)
    blocking = [issue for issue in built.blocking if issue.code != "not-configured"]  # no SD.Next involved
    if blocking:
        raise DeliveryError(" ".join(issue.message for issue in blocking))
    if not built.prompt.strip():
        raise DeliveryError("Write a prompt or add a LoRA first.")
    with transaction.atomic():
        job = submitting.create_job_row(
            composition,
            built,
            user,
            backend=f"@{target.name}"[:32],  # never a backend name (those are a-z 0-9 - _)
            target=target,
            private=private,
            warnings=[i.message for i in built.issues if i.level == "warning" and i.code != "unknown-to-sdnext"],
        )
        loras = list(job.loras.select_related("adapter"))
        job.payload = document(job, loras)
        job.save(update_fields=["payload"])
        submitting.enqueue_job(
            job, "generation.tasks.deliver", job_timeout=target.timeout_seconds * (target.retries + 2) + 60
        )
        progress.announce(job.pk)
    return job


def document(job: GenerationJob, loras: list[JobLora]) -> dict:
    """The JSON the webhook receives (and a command can get on stdin or as {json})."""
    return {
        "job": job.pk,
        "prompt": job.prompt,
        "negative_prompt": job.negative_prompt,
        "loras": [
            {
                "name": lora.name,
                "weight": lora.weight,
                "adapter_id": lora.adapter_id,
                "sha256": lora.adapter.sha256 if lora.adapter else None,
            }
            for lora in loras
        ],
        "parameters": {
            "checkpoint": job.checkpoint,
            "sampler": job.sampler,
            "steps": job.steps,
            "cfg_scale": job.cfg_scale,
            "width": job.width,
            "height": job.height,
            "seed": job.seed,
            "batch_size": job.batch_size,
            "n_iter": job.n_iter,
        },
        "requested_by": job.requested_by.get_username() if job.requested_by else None,
    }


def run(job_id: int) -> GenerationJob:
    """Deliver a QUEUED delivery job; the row ends SUCCEEDED or FAILED with what the target said."""
    job = pipeline.mark_running(job_id)
    if job is None:
        if pipeline.fail_started_twice(job_id):  # never sent twice: the target may have acted on it
            progress.send_status(job_id)
        return GenerationJob.objects.get(pk=job_id)
    reporter = progress.JobReporter(job.pk)
    reporter.status()
    target = job.target
    if target is None:
        return _end(job, JobStatus.FAILED, "The delivery target was deleted before this job ran.")
    try:
        check_target(target)
    except DeliveryError as exc:
        return _end(job, JobStatus.FAILED, str(exc))
    reporter.progress(progress.ProgressUpdate(f"sending to {target.name}"[:64], 0, 0, 0.5))
    if target.kind == DeliveryTarget.Kind.WEBHOOK:
        status, message, code, output = post_webhook(target, job.payload)
    else:
        status, message, code, output = run_command(target, job)
    job.result_code, job.output = code, output
    return _end(job, status, message)


def _end(job: GenerationJob, status: str, message: str) -> GenerationJob:
    job.refresh_from_db(fields=["cancel_requested"])
    job.status, job.message, job.finished_at = status, message, timezone.now()
    job.phase, job.eta_seconds = "", None
    if status == JobStatus.SUCCEEDED:
        job.progress = 1.0
    job.timings = {**job.timings, "finished": time.time()}
    job.save()
    progress.send_status(job.pk)
    return job


def _cap(target: DeliveryTarget) -> int:
    return max(1, target.max_output_kb) * 1024


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace").replace("\x00", "")


def post_webhook(target: DeliveryTarget, body: dict) -> tuple[str, str, int | None, str]:
    """(status, message, HTTP status, body) of one POST; retried only when the connection failed."""
    cap = _cap(target)
    attempts = 1 + max(0, target.retries)
    error: Exception | None = None
    for attempt in range(attempts):
        if attempt:
            time.sleep(min(5.0, 0.2 * 2**attempt))
        try:
            response = requests.post(
                target.url,
                json=body,
                timeout=(min(10, target.timeout_seconds), target.timeout_seconds),
                allow_redirects=False,
                stream=True,
                headers={"User-Agent": "LoRA-Manager-webhook"},
            )
        except requests.Timeout as exc:
            if isinstance(exc, requests.ConnectTimeout):
                error = exc
                continue
            return (
                JobStatus.FAILED,
                f"{target.name} did not answer within {target.timeout_seconds} s; not resent (it may have "
                "received the prompt).",
                None,
                "",
            )
        except requests.ConnectionError as exc:
            error = exc
            continue
        except requests.RequestException as exc:
            return JobStatus.FAILED, f"Could not send to {target.name}: {exc}", None, ""
        return _answer(target, response, cap)
    tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
    return JobStatus.FAILED, f"Could not connect to {target.name} after {tries}: {_reason(error)}", None, ""


def _reason(error: Exception | None) -> str:
    text = str(error) if error else "unknown error"
    for hint in ("Connection refused", "Name or service not known", "timed out", "No route to host"):
        if hint.lower() in text.lower():
            return hint.lower()
    return text[:300]


def _answer(target: DeliveryTarget, response: requests.Response, cap: int) -> tuple[str, str, int | None, str]:
    started = time.monotonic()
    data, cut = bytearray(), False
    try:
        for chunk in response.iter_content(CHUNK):
            data += chunk
            if len(data) > cap:
                cut = True
                del data[cap:]
                break
            if time.monotonic() - started > target.timeout_seconds:
                cut = True
                break
    except requests.RequestException as exc:
        cut = True
        data += f"\n[reading the answer failed: {exc}]".encode()
    finally:
        response.close()
    body, code = _text(bytes(data)), response.status_code
    note = f" The answer was longer than {cap // 1024} KB and was cut off." if cut else ""
    if 300 <= code < 400:
        where = response.headers.get("Location", "?")
        return (
            JobStatus.FAILED,
            f"{target.name} answered {code}, a redirect to {where[:200]}: redirects are not followed; an admin "
            "should set the final URL.",
            code,
            body,
        )
    if code >= 400:
        head = " ".join(body.split())[:200]
        return JobStatus.FAILED, f"{target.name} answered {code}{': ' + head if head else ''}.{note}", code, body
    return JobStatus.SUCCEEDED, f"Delivered to {target.name} (HTTP {code}).{note}", code, body


def arguments(target: DeliveryTarget, job: GenerationJob) -> list[str]:
    """The argument list with placeholders filled in; each stays one argument (no shell, no splitting)."""
    values = {
        "{prompt}": job.prompt,
        "{negative_prompt}": job.negative_prompt,
        "{json}": json.dumps(job.payload, ensure_ascii=False),
        "{job}": str(job.pk),
    }
    filled = []
    for argument in target.arguments:
        for key, value in values.items():
            argument = argument.replace(key, value)
        filled.append(argument)
    return filled


def run_command(target: DeliveryTarget, job: GenerationJob) -> tuple[str, str, int | None, str]:
    """Run the command (no shell), feed stdin, keep at most the cap of its output, stop it at the timeout."""
    cap = _cap(target)
    if target.stdin == DeliveryTarget.Stdin.PROMPT:
        feed = job.prompt.encode()
    elif target.stdin == DeliveryTarget.Stdin.JSON:
        feed = json.dumps(job.payload, ensure_ascii=False).encode()
    else:
        feed = b""
    argv = arguments(target, job)
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if feed else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    except OSError as exc:
        return JobStatus.FAILED, f"Could not start {argv[0]!r}: {exc.strerror or exc}.", None, ""
    kept = bytearray()
    total = [0]

    def read() -> None:
        assert process.stdout is not None
        while chunk := process.stdout.read1(CHUNK) if hasattr(process.stdout, "read1") else process.stdout.read(CHUNK):
            total[0] += len(chunk)
            if len(kept) < cap:
                kept.extend(chunk[: cap - len(kept)])  # keep reading (and dropping) so it never blocks

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if feed:
        threading.Thread(target=_feed, args=(process, feed), daemon=True).start()
    timed_out = False
    try:
        code = process.wait(timeout=target.timeout_seconds)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill(process)
        code = process.wait()
    reader.join(timeout=5)
    output = _text(bytes(kept))
    note = f" Its output was {total[0]:,} bytes; the first {cap // 1024} KB are kept." if total[0] > cap else ""
    if timed_out:
        return (
            JobStatus.FAILED,
            f"{target.name} did not finish within {target.timeout_seconds} s and was stopped.{note}",
            None,
            output,
        )
    if code != 0:
        described = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        return JobStatus.FAILED, f"{target.name} {described}.{note}", code, output
    return JobStatus.SUCCEEDED, f"{target.name} finished (exit code 0).{note}", code, output


def _feed(process: subprocess.Popen, data: bytes) -> None:
    try:
        assert process.stdin is not None
        process.stdin.write(data)
        process.stdin.close()
    except (BrokenPipeError, OSError):
        pass  # the command does not read its input: its exit code says how it went


def _kill(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        process.kill()
