from channels.db import database_sync_to_async
from django.template.loader import render_to_string

from adapters.civitai_runs import CIVITAI_GROUP
from adapters.models import CivitaiRun, ScanRun
from adapters.scan_runs import SCAN_GROUP
from lora_manager.consumers import AuthenticatedConsumer


class ScanProgressConsumer(AuthenticatedConsumer):
    """Pushes the scan status fragment (``#scan-progress``, swapped by id inside the panel that holds the
    socket); events only say 'changed', the row says what. Once the run has finished, the last fragment
    is sent and the socket closed: the page's gallery refreshes on it (static/js/gallery.js)."""

    async def allowed(self, user) -> bool:
        return await database_sync_to_async(user.has_perm)("adapters.view_adapter")

    async def get_groups(self) -> tuple[str, ...]:
        return (SCAN_GROUP.format(pk=self.scope["url_route"]["kwargs"]["pk"]),)

    async def send_initial(self) -> None:
        await self.scan_progress({})

    async def scan_progress(self, event: dict) -> None:
        html, finished = await database_sync_to_async(self.render)()
        if html:
            await self.send(text_data=html)
        if finished:
            await self.close()

    def render(self) -> tuple[str, bool]:
        scan = ScanRun.objects.filter(pk=self.scope["url_route"]["kwargs"]["pk"]).first()
        if scan is None:
            return "", True
        return render_to_string("adapters/_scan_status.html", {"scan": scan}), not scan.is_active


class CivitaiProgressConsumer(AuthenticatedConsumer):
    """Pushes the Civitai lookup progress fragment, like the scan's."""

    async def allowed(self, user) -> bool:
        return await database_sync_to_async(user.has_perm)("adapters.view_adapter")

    async def get_groups(self) -> tuple[str, ...]:
        return (CIVITAI_GROUP.format(pk=self.scope["url_route"]["kwargs"]["pk"]),)

    async def send_initial(self) -> None:
        await self.civitai_progress({})

    async def civitai_progress(self, event: dict) -> None:
        html = await database_sync_to_async(self.render)()
        if html:
            await self.send(text_data=html)

    def render(self) -> str:
        run = CivitaiRun.objects.filter(pk=self.scope["url_route"]["kwargs"]["pk"]).first()
        if run is None:
            return ""
        single = run.mode == CivitaiRun.Mode.SELECTED and len(run.adapter_ids) == 1
        context = {"run": run, "adapter_id": run.adapter_ids[0] if single else None, "can_cancel": True}
        return render_to_string("adapters/_civitai_progress.html#progress", context)
