from channels.db import database_sync_to_async
from django.template.loader import render_to_string

from adapters.civitai_runs import CIVITAI_GROUP
from adapters.models import CivitaiRun, ScanRun
from adapters.scan_runs import SCAN_GROUP
from lora_manager.consumers import AuthenticatedConsumer


class ScanProgressConsumer(AuthenticatedConsumer):
    """Pushes the scan progress fragment; events only say 'changed', the row says what."""

    async def allowed(self, user) -> bool:
        return await database_sync_to_async(user.has_perm)("adapters.view_adapter")

    async def get_groups(self) -> tuple[str, ...]:
        return (SCAN_GROUP.format(pk=self.scope["url_route"]["kwargs"]["pk"]),)

    async def send_initial(self) -> None:
        await self.scan_progress({})

    async def scan_progress(self, event: dict) -> None:
        html = await database_sync_to_async(self.render)()
        if html:
            await self.send(text_data=html)

    def render(self) -> str:
        scan = ScanRun.objects.filter(pk=self.scope["url_route"]["kwargs"]["pk"]).first()
        return render_to_string("adapters/_scan_progress.html", {"scan": scan}) if scan else ""


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
