"""Sending news to browsers: small plain-dict events on the channel layer, rendered by consumers."""

from __future__ import annotations

import logging

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
