"""Sending news to browsers: small plain-dict events on the channel layer, rendered by consumers."""

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


class RunReporter:
    """Progress of a background run (scan, embedding, archive): written to its row at most a few times a
    second (always on a phase change and at the end) and announced to the pages watching it.

    Subclasses name the channel group (with ``{pk}``) and the event type their consumer renders."""

    group: str
    event: str

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
        group_send(self.group.format(pk=self.run.pk), {"type": self.event, "run_id": self.run.pk})
