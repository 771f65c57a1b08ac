"""Websocket consumers of the project itself: the header's activity indicator and tracked runs' progress."""

from __future__ import annotations

import contextlib
import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.template.loader import render_to_string

from lora_manager.outages import REDIS_ERRORS
from lora_manager.realtime import ACTIVITY_GROUP, activity

log = logging.getLogger(__name__)


class AuthenticatedConsumer(AsyncWebsocketConsumer):
    """Refuses anonymous users; subclasses name the groups to join and render events as HTML."""

    groups_to_join: tuple[str, ...] = ()

    async def __call__(self, scope, receive, send) -> None:
        """Alongside the browser's messages, channels reads the channel layer (Redis) for the whole life of
        the socket. When Redis is down that read fails, and the error escaped to daphne as an ERROR
        "Exception inside application" traceback for every refused handshake; the browser retries each
        socket with backoff, so an outage filled the log. A socket that was never accepted now ends with
        the warning ``connect`` logged ("websocket … refused: Redis is unreachable"). An accepted socket
        still lets the error reach daphne (one traceback per socket, when Redis goes): daphne closes it
        with 1011, which the browser reconnects after; the close codes an application may send through
        daphne (1000, 3000-4999) would make the browser give up."""
        try:
            await super().__call__(scope, receive, send)
        except REDIS_ERRORS as exc:
            if getattr(self, "accepted", False):
                raise
            log.debug("websocket %s ended: Redis is unreachable (%s)", scope.get("path", ""), exc)
            with contextlib.suppress(Exception):  # a pending handshake is refused (403); else already closed
                await send({"type": "websocket.close"})

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not await self.allowed(user):
            await self.close(code=4403)
            return
        try:
            for group in await self.get_groups():
                await self.channel_layer.group_add(group, self.channel_name)
        except REDIS_ERRORS as exc:
            # Redis is down: refuse the handshake (403, no traceback). The browser sees a failed connect,
            # so the ws extension retries with a growing delay until Redis is back.
            log.warning("websocket %s refused: Redis is unreachable (%s)", self.scope.get("path", ""), exc)
            await self.close()
            return
        self.joined = await self.get_groups()
        await self.accept()
        self.accepted = True
        await self.send_initial()

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "joined", ()):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def allowed(self, user) -> bool:
        return True

    async def get_groups(self) -> tuple[str, ...]:
        return self.groups_to_join

    async def send_initial(self) -> None:
        """Send the current state at once, so a (re)connected page is never stale."""


class RunProgressConsumer(AuthenticatedConsumer):
    """Pushes a tracked run's progress fragment (scan, embedding run, archive run); events only say
    'changed', the row says what. Configured per kind in each app's routing::

        RunProgressConsumer.as_asgi(model=ScanRun, template="adapters/_scan_progress.html",
                                    context_name="scan", permission="adapters.view_adapter")
    """

    def __init__(
        self,
        *,
        model,
        template: str,
        permission: str,
        context_name: str = "run",
        extra_context: dict | None = None,
        close_when_finished: bool = False,
    ) -> None:
        super().__init__()
        self.model, self.template, self.permission = model, template, permission
        self.context_name, self.extra_context = context_name, extra_context or {}
        self.close_when_finished = close_when_finished  # send the last fragment, then close the socket

    async def allowed(self, user) -> bool:
        return await database_sync_to_async(user.has_perm)(self.permission)

    async def get_groups(self) -> tuple[str, ...]:
        return (self.model.progress_group.format(pk=self.scope["url_route"]["kwargs"]["pk"]),)

    async def send_initial(self) -> None:
        await self.run_progress({})

    async def run_progress(self, event: dict) -> None:
        html, finished = await database_sync_to_async(self.render)()
        if html:
            await self.send(text_data=html)
        if finished and self.close_when_finished:
            await self.close()

    def render(self) -> tuple[str, bool]:
        run = self.model.objects.filter(pk=self.scope["url_route"]["kwargs"]["pk"]).first()
        if run is None:
            return "", True
        return render_to_string(self.template, {self.context_name: run, **self.extra_context}), not run.is_active


class ActivityConsumer(AuthenticatedConsumer):
    groups_to_join = (ACTIVITY_GROUP,)

    async def send_initial(self) -> None:
        counts = await database_sync_to_async(activity.current_counts)()
        await self.send_fragment(counts)

    async def activity_update(self, event: dict) -> None:
        await self.send_fragment({"running": event["running"], "queued": event["queued"]})

    async def send_fragment(self, counts: dict) -> None:
        await self.send(text_data=render_to_string("_activity.html", {"activity": counts}))
