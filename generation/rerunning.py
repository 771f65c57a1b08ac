"""Re-running a job: the same composition again, to the same place (SD.Next or a delivery target).

Its own module because it needs both ways of queuing a job (``submitting`` and ``deliveries``, which
builds on ``submitting``): kept in either, the two would import each other.
"""

from __future__ import annotations

from generation import composer, deliveries, submitting
from generation.models import GenerationJob


def rerun(job: GenerationJob, user=None) -> GenerationJob:
    """The same composition again (a fixed seed gives the same image; -1 draws a new one), to the same place."""
    composition = composer.Composition.from_dict(job.composition)
    if job.target_id is not None:
        try:
            return deliveries.submit(composition, job.target, user, private=job.private)
        except deliveries.DeliveryError as exc:
            raise submitting.SubmitError(str(exc)) from exc
    return submitting.submit(composition, user, private=job.private)
