"""Signals the generation app sends, so what reacts to a job need not be imported by what runs it.

``job_finished(job_id=...)``: a generation or delivery job reached a final state (succeeded, failed,
cancelled), or its RQ job ended without one (the row then says what happened). Sent by the RQ jobs
(``tasks.py``) and by a cancel before the job started (``submitting.cancel``, on commit). Receivers are
connected in ``GenerationConfig.ready()``: today ``sweeps`` draws the grid when the job was a sweep's
last cell. A receiver that fails is logged (by Django) and never changes how the job ended.
"""

from __future__ import annotations

from django.dispatch import Signal

job_finished = Signal()  # keyword: job_id (int)


def send_job_finished(job_id: int) -> None:
    job_finished.send_robust(sender=None, job_id=job_id)
