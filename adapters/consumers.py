from channels.db import database_sync_to_async
from django.template.loader import render_to_string

from adapters.civitai_runs import CIVITAI_GROUP
from adapters.models import CivitaiRun
from lora_manager.realtime.consumers import AuthenticatedConsumer


class CivitaiProgressConsumer(AuthenticatedConsumer):
    """Pushes the Civitai lookup progress fragment (its own consumer: the fragment needs the run's adapter)."""

    async def allowed(self, user) -> bool:
        return await database_sync_to_async(user.has_perm)("adapters.view_adapter")

    async def get_groups(self) -> tuple[str, ...]:
        return (CIVITAI_GROUP.format(pk=self.scope["url_route"]["kwargs"]["pk"]),)

    async def send_initial(self) -> None:
        await self.run_progress({})

    async def run_progress(self, event: dict) -> None:  # realtime.RUN_EVENT, as every tracked run sends
        html = await database_sync_to_async(self.render)()
        if html:
            await self.send(text_data=html)

    def render(self) -> str:
        run = CivitaiRun.objects.filter(pk=self.scope["url_route"]["kwargs"]["pk"]).first()
        if run is None:
            return ""
        single = run.mode == CivitaiRun.Mode.SELECTED and len(run.adapter_ids) == 1
        context = {"run": run, "adapter_id": run.adapter_ids[0] if single else None, "can_cancel": True}
        return render_to_string("adapters/_civitai_status.html", context)
