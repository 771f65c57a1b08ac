"""Progress of a generation: the reporter the pipeline talks to, and the plain dicts pages render.

The reporter writes the job row and tells the channel groups, at most `interval` apart (4/s by
default), so a fast poll can never flood the database or a slow browser. Progress events carry a
small snapshot dict and consumers render `generation/_job_progress.html` straight from it (no query
on the hot path); status events only say "job N changed" and consumers re-read the row.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Protocol

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from generation import conf
from generation.models import GenerationJob

logger = logging.getLogger(__name__)
JOBS_GROUP = "generation.jobs"
JOB_GROUP = "generation.job.{pk}"


@dataclass
class ProgressUpdate:
    """One reading of SD.Next's /progress, in our words."""

    phase: str
    step: int
    steps_total: int
    fraction: float
    eta_seconds: float | None = None
    pass_no: int = 0
    passes: int = 0
    preview: str = ""  # a data: URL, only when the job asked for live previews
    read_at: float = 0.0  # time.perf_counter() when the pipeline read it (for the benchmark)


class Reporter(Protocol):
    cancelling: bool

    def progress(self, update: ProgressUpdate) -> bool: ...

    def status(self) -> None: ...


def snapshot(
    job_id: int,
    status: str,
    phase: str = "",
    step: int = 0,
    steps_total: int = 0,
    fraction: float = 0.0,
    eta_seconds: float | None = None,
    pass_no: int = 0,
    passes: int = 0,
    preview: str = "",
    cancelling: bool = False,
) -> dict:
    """What `_job_progress.html` shows, as a plain dict (the same for the page and the consumer)."""
    return {
        "id": job_id,
        "status": status,
        "phase": phase,
        "step": step,
        "steps_total": steps_total,
        "percent": max(0, min(100, round(fraction * 100))),
        "eta_seconds": eta_seconds,
        "pass_no": pass_no,
        "passes": passes,
        "preview": preview,
        "cancelling": cancelling,
    }


def job_snapshot(job: GenerationJob) -> dict:
    return snapshot(
        job.pk,
        job.status,
        job.phase,
        job.step,
        job.steps_total,
        job.progress,
        job.eta_seconds,
        job.pass_no,
        job.passes,
        job.preview if job.live_preview else "",
        job.cancel_requested and job.status == "running",
    )


def announce(job_id: int) -> None:
    """Tell every page watching this job (or the job list) that its row changed: after commit."""
    transaction.on_commit(lambda: send_status(job_id))


def send_status(job_id: int) -> None:
    # event_id lets the sockets of one process that watch this job share one render of its panel
    _send_both(job_id, {"type": "job.status", "job_id": job_id, "event_id": uuid.uuid4().hex})


def _send_both(job_id: int, event: dict) -> None:
    """One hop into the event loop for both groups (each async_to_sync costs milliseconds)."""
    layer = get_channel_layer()
    if layer is None:
        return

    async def send() -> None:
        await layer.group_send(JOB_GROUP.format(pk=job_id), event)
        await layer.group_send(JOBS_GROUP, event)

    try:
        async_to_sync(send)()
    except Exception as exc:  # noqa: BLE001 - news is optional, the row in the database is the truth
        logger.warning("could not send %s for job %s: %s", event.get("type"), job_id, exc)


class JobReporter:
    """Writes progress to the job row and the channel groups, throttled (see the module docstring)."""

    def __init__(self, job_id: int, interval: float | None = None):
        self.job_id = job_id
        self.interval = conf.progress_interval() if interval is None else interval
        self.last = float("-inf")
        self.sent = 0
        self.cancelling = False

    def progress(self, update: ProgressUpdate) -> bool:
        """Record one reading; False when it came too soon after the last one and was dropped."""
        now = time.monotonic()
        if now - self.last < self.interval:
            return False
        self.last = now
        shown = snapshot(
            self.job_id,
            "running",
            update.phase[:64],
            max(0, update.step),
            max(0, update.steps_total),
            update.fraction,
            update.eta_seconds,
            update.pass_no,
            update.passes,
            update.preview,
            self.cancelling,
        )
        fields = {
            "phase": shown["phase"],
            "step": shown["step"],
            "steps_total": shown["steps_total"],
            "progress": update.fraction,
            "eta_seconds": update.eta_seconds,
            "pass_no": update.pass_no,
            "passes": update.passes,
        }
        if update.preview:  # events without one leave the page's preview image alone
            fields["preview"] = update.preview
        GenerationJob.objects.filter(pk=self.job_id, status="running").update(**fields)
        _send_both(self.job_id, {"type": "job.progress", "job": shown})
        self.sent += 1
        return True

    def status(self) -> None:
        """The row's status changed (the caller saved it)."""
        send_status(self.job_id)
