"""Sending news to browsers: small plain-dict events on the channel layer, rendered by consumers.

This package module sends; beside it: ``consumers`` (the project's websocket consumers, the base of the
apps' ones), ``routing`` (every websocket URL) and ``activity`` (the header's job counts)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

log = logging.getLogger(__name__)

ACTIVITY_GROUP = "activity"


def group_send(group: str, event: dict) -> None:
    """Best effort: a full or unreachable channel layer must never fail the job that reports."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, event)
    except Exception as exc:  # noqa: BLE001 - news is optional, the row in the DB is the truth
        log.warning("could not send %s to %s: %s", event.get("type"), group, exc)


RUN_EVENT = "run.progress"  # the one event type of tracked runs; consumers.RunProgressConsumer renders it


class RunReporter:
    """Progress of a tracked run (scan, embedding, archive): written to its row at most a few times a
    second (always on a phase change and at the end) and announced to the pages watching it, in the
    channel group the run's model names (``progress_group``)."""

    def __init__(self, run, echo: Callable[[str, int, int], None] | None = None, interval: float = 0.25):
        self.run, self.echo, self.interval = run, echo, interval
        self.last = 0.0

    def __call__(self, phase: str, done: int, total: int) -> None:
        if self.echo:
            self.echo(phase, done, total)
        now = time.monotonic()
        if now - self.last < self.interval and done != total and phase == self.run.phase:
            return
        self.last = now
        self.run.phase, self.run.done, self.run.total = phase, done, total
        type(self.run).objects.filter(pk=self.run.pk).update(phase=phase, done=done, total=total)
        self.notify()

    def notify(self) -> None:
        notify_run(self.run)


def notify_run(run) -> None:
    """Tell the pages watching ``run`` that its row changed (the consumer re-reads and re-renders it)."""
    group_send(run.progress_group.format(pk=run.pk), {"type": RUN_EVENT, "run_id": run.pk})
