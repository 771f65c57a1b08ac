from channels.db import database_sync_to_async
from django.template.loader import render_to_string

from archive.models import ArchiveRun
from archive.planning import ON_CONFLICT
from archive.runs import RUN_GROUP
from lora_manager.consumers import AuthenticatedConsumer


class ArchiveRunConsumer(AuthenticatedConsumer):
    """Pushes an export/import/backup run's fragment; events only say 'changed', the row says what."""

    async def allowed(self, user) -> bool:
        return await database_sync_to_async(user.has_perm)("archive.view_archiverun")

    async def get_groups(self) -> tuple[str, ...]:
        return (RUN_GROUP.format(pk=self.scope["url_route"]["kwargs"]["pk"]),)

    async def send_initial(self) -> None:
        await self.archive_progress({})

    async def archive_progress(self, event: dict) -> None:
        html = await database_sync_to_async(self.render)()
        if html:
            await self.send(text_data=html)

    def render(self) -> str:
        run = ArchiveRun.objects.filter(pk=self.scope["url_route"]["kwargs"]["pk"]).first()
        return render_to_string("archive/_run.html", {"run": run, "on_conflict": ON_CONFLICT}) if run else ""
