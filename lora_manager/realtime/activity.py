"""The header's background-activity indicator: running and queued job counts from RQ itself."""

from __future__ import annotations

import django_rq
import redis
from django.conf import settings
from rq import Queue
from rq.job import Job
from rq.registry import StartedJobRegistry

from lora_manager.realtime import ACTIVITY_GROUP, group_send


def queue_names() -> list[str]:
    return list(settings.RQ_QUEUES)


_connection: tuple[str, redis.Redis] | None = None


def _redis() -> redis.Redis:
    """One connection per process: opening one per queue made every broadcast cost ~15 ms."""
    global _connection
    if _connection is None or _connection[0] != settings.REDIS_URL:
        _connection = (settings.REDIS_URL, django_rq.get_connection("default"))
    return _connection[1]


def current_counts(leaving_job_id: str | None = None) -> dict[str, int]:
    """Counts across our queues; ``leaving_job_id`` is a job that is finishing but still registered."""
    connection = _redis()
    with connection.pipeline() as pipe:
        for name in queue_names():
            queue = Queue(name, connection=connection)
            pipe.llen(queue.key)
            pipe.zrange(StartedJobRegistry(queue=queue).key, 0, -1)
        replies = pipe.execute()
    queued = sum(replies[0::2])
    started = [
        StartedJobRegistry.parse_job_id(entry.decode() if isinstance(entry, bytes) else entry)
        for entries in replies[1::2]
        for entry in entries
    ]
    return {"running": len([job_id for job_id in started if job_id != leaving_job_id]), "queued": queued}


def broadcast(leaving_job_id: str | None = None) -> dict[str, int]:
    counts = current_counts(leaving_job_id)
    group_send(ACTIVITY_GROUP, {"type": "activity.update", **counts})
    return counts


def current_job_id() -> str | None:
    from rq import get_current_job

    job: Job | None = get_current_job()
    return job.id if job else None
