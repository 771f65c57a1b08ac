"""Live generation pages: progress events render from their plain dict, status events re-read the row."""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from channels.db import database_sync_to_async
from django.template.loader import render_to_string

from generation import page_context
from generation.models import GenerationJob, Sweep
from generation.progress import JOB_GROUP, JOBS_GROUP
from lora_manager.realtime.consumers import AuthenticatedConsumer

VIEW = "generation.view_generationjob"


def render_progress(snap: dict) -> str:
    """The progress fragment, plus the live preview image when this event brings a new one."""
    html = render_to_string("generation/_job_progress.html", {"snap": snap})
    if snap.get("preview"):
        html += render_to_string("generation/_job_preview.html", {"snap": snap})
    return html


class GenerationConsumer(AuthenticatedConsumer):
    async def allowed(self, user) -> bool:
        self.can_cancel = await database_sync_to_async(user.has_perm)("generation.change_generationjob")
        self.can_submit = await database_sync_to_async(user.has_perm)("generation.add_generationjob")
        return await database_sync_to_async(user.has_perm)(VIEW)

    async def job_progress(self, event: dict) -> None:
        await self.send(text_data=render_progress(event["job"]))


class JobsConsumer(GenerationConsumer):
    """The queue (positions, progress) and the recent results, on the jobs and composer pages.

    Everyone's progress events reach this group; a private job's (with its live preview) is passed on
    only to the users the visibility rule lets see it (looked up once per job and connection)."""

    groups_to_join = (JOBS_GROUP,)

    async def job_progress(self, event: dict) -> None:
        job_id = event["job"]["id"]
        seen = getattr(self, "seen_jobs", None)
        if seen is None:
            seen = self.seen_jobs = {}
        if job_id not in seen:
            seen[job_id] = await database_sync_to_async(self.may_see)(job_id)
        if seen[job_id]:
            await self.send(text_data=render_progress(event["job"]))

    def may_see(self, job_id: int) -> bool:
        return GenerationJob.objects.visible_to(self.scope["user"]).filter(pk=job_id).exists()

    async def send_initial(self) -> None:
        await self.job_status({})

    async def job_status(self, event: dict) -> None:
        await self.send(text_data=await database_sync_to_async(self.render_lists)())

    def render_lists(self) -> str:
        user = self.scope["user"]
        return render_to_string(
            "generation/_queue.html", page_context.queue_context(self.can_cancel, user)
        ) + render_to_string("generation/_recent.html", page_context.recent_context(user))


class QueueConsumer(JobsConsumer):
    """The queue only, for the composer (it has no recent-results list for a swap to land in)."""

    def render_lists(self) -> str:
        return render_to_string(
            "generation/_queue.html", page_context.queue_context(self.can_cancel, self.scope["user"])
        )


# Renders of one job's panel shared by every socket of this process that watches it: a status event reaches
# each socket, and rendering the panel once per socket queued 200 renders on the one sync thread (issue 17's
# serving bench). Keyed by the event and the two permissions the panel shows; the newest few are kept.
_shared_panels: OrderedDict[tuple, asyncio.Future] = OrderedDict()
_SHARED_PANELS_KEPT = 64


def render_job_panel(pk: int, can_cancel: bool, can_submit: bool) -> tuple[str, tuple] | None:
    """The panel's HTML and what its visibility depends on (private flag, owner), or None when the job is gone."""
    job = GenerationJob.objects.filter(pk=pk).first()
    if job is None:
        return None
    html = render_to_string("generation/_job_panel.html", page_context.job_context(job, can_cancel, can_submit))
    return html, (job.private, job.requested_by_id)


class JobConsumer(GenerationConsumer):
    """One job's detail panel."""

    async def allowed(self, user) -> bool:
        if not await super().allowed(user):
            return False
        self.pk = self.scope["url_route"]["kwargs"]["pk"]
        exists = await database_sync_to_async(GenerationJob.objects.filter(pk=self.pk).exists)()
        self.visible_when = None  # (private, owner) for which this socket's user was last found allowed
        return await database_sync_to_async(self.may_see)() or not exists  # someone else's private job: refused

    def may_see(self) -> bool:
        """THE rule (GenerationJob.objects.visible_to), asked again only when the job's privacy or owner changed."""
        return GenerationJob.objects.visible_to(self.scope["user"]).filter(pk=self.pk).exists()

    async def get_groups(self) -> tuple[str, ...]:
        return (JOB_GROUP.format(pk=self.pk),)

    async def send_initial(self) -> None:
        await self.job_status({})

    async def job_status(self, event: dict) -> None:
        rendered = await self.shared_render(event.get("event_id"))
        if rendered is None:
            return
        html, basis = rendered
        if basis != self.visible_when:
            if not await database_sync_to_async(self.may_see)():
                return
            self.visible_when = basis
        await self.send(text_data=html)

    async def shared_render(self, event_id: str | None) -> tuple[str, tuple] | None:
        render = database_sync_to_async(render_job_panel)
        if event_id is None:  # the first render on connect: nothing to share
            return await render(self.pk, self.can_cancel, self.can_submit)
        key = (event_id, self.pk, self.can_cancel, self.can_submit)
        future = _shared_panels.get(key)
        if future is None:
            future = _shared_panels[key] = asyncio.ensure_future(render(self.pk, self.can_cancel, self.can_submit))
            while len(_shared_panels) > _SHARED_PANELS_KEPT:
                _shared_panels.popitem(last=False)
        return await asyncio.shield(future)


class SweepConsumer(GenerationConsumer):
    """A sweep's one progress view: any of its jobs changing, or its grid being drawn, re-renders the panel."""

    async def allowed(self, user) -> bool:
        self.sweep_id = self.scope["url_route"]["kwargs"]["pk"]
        if not await super().allowed(user):
            return False
        return await database_sync_to_async(self.visible)(user)  # a sweep of someone else's private jobs: refused

    def visible(self, user) -> bool:
        return Sweep.objects.visible_to(user).filter(pk=self.sweep_id).exists() or not (
            Sweep.objects.filter(pk=self.sweep_id).exists()
        )

    async def get_groups(self) -> tuple[str, ...]:
        from generation.sweeps import SWEEP_GROUP

        return (JOBS_GROUP, SWEEP_GROUP.format(pk=self.sweep_id))

    async def send_initial(self) -> None:
        await self.sweep_status({})

    async def job_progress(self, event: dict) -> None:
        await self.job_status({"job_id": event["job"]["id"]})

    async def job_status(self, event: dict) -> None:
        html = await database_sync_to_async(self.render_panel)(event.get("job_id"))
        if html:
            await self.send(text_data=html)

    async def sweep_status(self, event: dict) -> None:
        html = await database_sync_to_async(self.render_panel)(None)
        if html:
            await self.send(text_data=html)

    def render_panel(self, job_id: int | None) -> str:
        from generation.views import sweeps as sweep_views

        if job_id is not None and not GenerationJob.objects.filter(pk=job_id, sweep_id=self.sweep_id).exists():
            return ""
        return sweep_views.render_panel(self.sweep_id, self.scope["user"])
