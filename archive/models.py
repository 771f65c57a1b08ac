"""Archive runs: one row per export, import (check, then apply) or backup, which users watch.

The archives themselves are files (exports and uploads under ``ARCHIVE_DIR``, backups under
``BACKUP_DIR``); the row says what was asked, how far it got, the dry-run plan and every problem found.
"""

from __future__ import annotations

from django.db import models

from lora_manager.models import TrackedRun


class ArchiveRun(TrackedRun):
    class Kind(models.TextChoices):
        EXPORT = "export", "Export"
        BACKUP = "backup", "Backup"
        CHECK = "check", "Import check (dry run)"
        IMPORT = "import", "Import"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        READY = "ready", "Checked, waiting for confirmation"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    options = models.JSONField(default=dict, blank=True)  # scope, ids, filter, metadata_only, on_conflict, ...
    path = models.CharField(max_length=2048, blank=True)  # the archive written or read
    original_name = models.CharField(max_length=255, blank=True)  # the uploaded file's name
    size = models.BigIntegerField(default=0)
    plan = models.JSONField(default=dict, blank=True)  # importing.Plan.as_dict()
    result = models.JSONField(default=dict, blank=True)  # counts of what was written or changed
    problems = models.JSONField(default=list, blank=True)  # every problem that refused the archive

    job_path, job_id_prefix, progress_group = "archive.tasks.archive_job", "archive", "archive.{pk}"

    class Meta(TrackedRun.Meta):
        indexes = [models.Index(fields=["kind", "status"])]
        permissions = [
            ("export_library", "Can export the library and download archives"),
            ("import_library", "Can import archives and restore backups"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.status})"

    @property
    def noun(self) -> str:
        return self.get_kind_display().lower() if self.kind else "archive run"

    @property
    def again(self) -> str:
        return "upload the archive again" if self.kind in (self.Kind.CHECK, self.Kind.IMPORT) else "start it again"

    @property
    def file_name(self) -> str:
        return self.path.rsplit("/", 1)[-1] if self.path else ""
