from channels.db import database_sync_to_async
from django.template.loader import render_to_string

from lora_manager.consumers import AuthenticatedConsumer
from recommendations.embedding_runs import EMBED_GROUP
from recommendations.models import EmbeddingRun


class EmbeddingProgressConsumer(AuthenticatedConsumer):
    """Pushes the embedding progress fragment; events only say 'changed', the row says what."""

    async def allowed(self, user) -> bool:
        return await database_sync_to_async(user.has_perm)("adapters.view_adapter")

    async def get_groups(self) -> tuple[str, ...]:
        return (EMBED_GROUP.format(pk=self.scope["url_route"]["kwargs"]["pk"]),)

    async def send_initial(self) -> None:
        await self.embedding_progress({})

    async def embedding_progress(self, event: dict) -> None:
        html = await database_sync_to_async(self.render)()
        if html:
            await self.send(text_data=html)

    def render(self) -> str:
        run = EmbeddingRun.objects.filter(pk=self.scope["url_route"]["kwargs"]["pk"]).first()
        return render_to_string("recommendations/_embed_progress.html", {"run": run}) if run else ""
