from django.apps import AppConfig
from django.conf import settings


class AdaptersConfig(AppConfig):
    name = "adapters"

    def ready(self) -> None:
        from django.core import checks

        from adapters import derived
        from adapters.models import CivitaiRun, ScanRun
        from lora_manager.runs.periodic import Periodic

        checks.register(derived.triggers_check, checks.Tags.database)
        # Worker start-up and the janitor loop over these (lora_manager.runs, lora_manager.runs.periodic).
        self.tracked_runs = (ScanRun, CivitaiRun)
        self.worker_start = ("adapters.scan_runs.first_scan_on_worker_start",)  # dotted: imported by run_worker
        self.periodic_jobs = (
            Periodic("rescan", "adapters.scan_runs.start_scan", lambda: settings.RESCAN_INTERVAL_MINUTES * 60),
        )
