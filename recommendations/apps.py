from django.apps import AppConfig
from django.db.models.signals import m2m_changed, post_save


def _catalog_changed(sender, reason: str = "", **kwargs) -> None:
    """A scan, bulk edit, Civitai lookup or import changed the catalog (``adapters.signals``): re-embed soon."""
    from recommendations.embedding_runs import request_embedding_safely

    request_embedding_safely(reason or "catalog changed")


def _adapter_saved(sender, instance, created: bool, raw: bool = False, **kwargs) -> None:
    """A person edited one adapter (detail page, admin): re-embed soon. Creations come from scans,
    which send ``catalog_changed`` once per scan, as bulk edits do."""
    if created or raw:
        return
    from recommendations.embedding_runs import request_embedding_safely

    request_embedding_safely("edit")


def _adapter_tags_changed(sender, action: str, **kwargs) -> None:
    if action in ("post_add", "post_remove", "post_clear"):
        from recommendations.embedding_runs import request_embedding_safely

        request_embedding_safely("edit: tags")


class RecommendationsConfig(AppConfig):
    name = "recommendations"

    def ready(self) -> None:
        from adapters.models import Adapter
        from adapters.signals import catalog_changed
        from recommendations.models import EmbeddingRun

        self.tracked_runs = (EmbeddingRun,)  # settled by the janitor (lora_manager.runs.tracked)

        catalog_changed.connect(_catalog_changed, dispatch_uid="recommendations.catalog_changed")
        post_save.connect(_adapter_saved, sender=Adapter, dispatch_uid="recommendations.adapter_saved")
        m2m_changed.connect(
            _adapter_tags_changed, sender=Adapter.tags.through, dispatch_uid="recommendations.adapter_tags"
        )
