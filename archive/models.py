"""Archive runs: one row per export, import (check, then apply) or backup, which users watch.

The archives themselves are files (exports and uploads under ``ARCHIVE_DIR``, backups under
``BACKUP_DIR``); the row says what was asked, how far it got, the dry-run plan and every problem found.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ArchiveRun(models.Model):
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
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    options = models.JSONField(default=dict, blank=True)  # scope, ids, filter, metadata_only, on_conflict, ...
    path = models.CharField(max_length=2048, blank=True)  # the archive written or read
    original_name = models.CharField(max_length=255, blank=True)  # the uploaded file's name
    size = models.BigIntegerField(default=0)
    phase = models.CharField(max_length=32, blank=True)
    done = models.BigIntegerField(default=0)
    total = models.BigIntegerField(default=0)
    plan = models.JSONField(default=dict, blank=True)  # importing.Plan.as_dict()
    result = models.JSONField(default=dict, blank=True)  # counts of what was written or changed
    problems = models.JSONField(default=list, blank=True)  # every problem that refused the archive
    message = models.TextField(blank=True)
    rq_job_id = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["kind", "status"])]
        permissions = [
            ("export_library", "Can export the library and download archives"),
            ("import_library", "Can import archives and restore backups"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in (self.Status.QUEUED, self.Status.RUNNING)

    @property
    def percent(self) -> int:
        return int(100 * self.done / self.total) if self.total else (0 if self.is_active else 100)

    @property
    def file_name(self) -> str:
        return self.path.rsplit("/", 1)[-1] if self.path else ""
