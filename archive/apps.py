from django.apps import AppConfig
from django.conf import settings


class ArchiveConfig(AppConfig):
    name = "archive"

    def ready(self) -> None:
        from archive.models import ArchiveRun
        from lora_manager.runs.periodic import Periodic

        # Worker start-up and the janitor loop over these (lora_manager.runs, lora_manager.runs.periodic).
        self.tracked_runs = (ArchiveRun,)
        self.periodic_jobs = (
            Periodic("backup", "archive.runs.start_backup", lambda: settings.BACKUP_INTERVAL_HOURS * 3600),
            # Abandoned archive uploads (issue 14): orphans after an hour, unconfirmed checks after KEEP_HOURS.
            Periodic("upload-cleanup", "archive.uploads.remove_abandoned", lambda: 3600),
        )
