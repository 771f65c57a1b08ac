from django.apps import AppConfig
from django.conf import settings
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
        from adapters.models import CivitaiRun, ScanRun
        from lora_manager.runs.periodic import Periodic

        post_migrate.connect(_ensure_search, dispatch_uid="adapters.ensure_search")
        # Worker start-up and the janitor loop over these (lora_manager.runs, lora_manager.runs.periodic).
        self.tracked_runs = (ScanRun, CivitaiRun)
        self.worker_start = ("adapters.scan_runs.first_scan_on_worker_start",)  # dotted: imported by run_worker
        self.periodic_jobs = (
            Periodic("rescan", "adapters.scan_runs.start_scan", lambda: settings.RESCAN_INTERVAL_MINUTES * 60),
        )
