"""Enqueueing background work after the current transaction commits, and telling the header."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import django_rq
from django.db import transaction

from lora_manager import activity


def enqueue(queue_name: str, func: str, *args: Any, job_id: str | None = None, **kwargs: Any) -> None:
    """Enqueue on commit, so the worker always finds the row the job is about. ``func`` is a dotted
    path (``"generation.tasks.generate"``): domain modules name their jobs without importing tasks.py."""

    def _send() -> None:
        queue = django_rq.get_queue(queue_name)
        queue.enqueue(func, *args, job_id=job_id, **kwargs)
        activity.broadcast()

    transaction.on_commit(_send)


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
