"""Enqueueing background work after the current transaction commits, and telling the header."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import django_rq
from django.apps import apps
from django.db import transaction
from django.utils import timezone

from lora_manager import outages
from lora_manager.realtime import activity

log = logging.getLogger(__name__)


def enqueue(queue_name: str, func: str, *args: Any, job_id: str | None = None, **kwargs: Any) -> None:
    """Enqueue on commit, so the worker always finds the row the job is about. ``func`` is a dotted path
    (``"generation.tasks.generate"``): domain modules name their jobs without importing tasks.py.

    Redis is checked first (RedisUnavailable, a 503 for the request): called inside the transaction that
    writes the row, so the row rolls back and no "queued" row is left that no queue will ever run. Should
    Redis vanish between that check and the commit, the row is marked failed instead."""
    outages.require_redis(django_rq.get_connection(queue_name))

    def _send() -> None:
        queue = django_rq.get_queue(queue_name)
        try:
            queue.enqueue(func, *args, job_id=job_id, **kwargs)
        except outages.REDIS_ERRORS as exc:
            if job_id:
                mark_not_queued(job_id, exc)
            raise outages.RedisUnavailable(str(exc)) from exc
        activity.broadcast()

    transaction.on_commit(_send)


def mark_not_queued(job_id: str, exc: BaseException) -> int:
    """The run or job row (any model with ``rq_job_id``/``status``/``message``/``finished_at``) whose
    enqueue failed becomes FAILED with a message, instead of waiting forever as "queued"."""
    message = f"It could not be queued because Redis was not reachable ({exc}). Nothing ran: start it again."
    fixed = 0
    for model in apps.get_models():
        names = {field.name for field in model._meta.get_fields()}
        if {"rq_job_id", "status", "message", "finished_at"} <= names:
            fixed += model._default_manager.filter(rq_job_id=job_id, status="queued").update(
                status="failed", message=message, finished_at=timezone.now()
            )
    if fixed:
        log.warning("marked %s row(s) of job %s failed: Redis unreachable at enqueue", fixed, job_id)
    return fixed


def tracked(func: Callable) -> Callable:
    """Wrap an RQ task so the header indicator updates when it starts and when it ends."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        activity.broadcast()
        try:
            return func(*args, **kwargs)
        finally:
            activity.broadcast(leaving_job_id=activity.current_job_id())

    return wrapper
