"""The header's background-activity indicator: running and queued job counts from RQ itself."""

from __future__ import annotations

import django_rq
from django.conf import settings
from rq.job import Job
from rq.registry import StartedJobRegistry

from lora_manager.realtime import ACTIVITY_GROUP, group_send


def queue_names() -> list[str]:
    return list(settings.RQ_QUEUES)


def current_counts(leaving_job_id: str | None = None) -> dict[str, int]:
    """Counts across our queues; ``leaving_job_id`` is a job that is finishing but still registered."""
    running = queued = 0
    for name in queue_names():
        queue = django_rq.get_queue(name)
        queued += queue.count
        registry = StartedJobRegistry(queue=queue)
        running += len([job_id for job_id in registry.get_job_ids() if job_id != leaving_job_id])
    return {"running": running, "queued": queued}


def broadcast(leaving_job_id: str | None = None) -> dict[str, int]:
    counts = current_counts(leaving_job_id)
    group_send(ACTIVITY_GROUP, {"type": "activity.update", **counts})
    return counts


def current_job_id() -> str | None:
    from rq import get_current_job

    job: Job | None = get_current_job()
    return job.id if job else None
