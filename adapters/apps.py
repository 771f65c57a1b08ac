from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _ensure_search(sender, using: str = "default", **kwargs) -> None:
    """Re-create search and derived-table triggers after any migration: SQLite drops them when it rebuilds a table."""
    from django.db import connections

    from adapters import derived, search

    if sender.name == "adapters":
        search.install(connections[using])
        derived.install(connections[using])


class AdaptersConfig(AppConfig):
    name = "adapters"

    def ready(self) -> None:
        post_migrate.connect(_ensure_search, dispatch_uid="adapters.ensure_search")
