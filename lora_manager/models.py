"""Project-level records: suggestions users accepted (for the dashboard's recommendation figures)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class SuggestionAcceptance(models.Model):
    """A user added a suggested LoRA to a composition ("Add to composition" on a suggestion)."""

    class Kind(models.TextChoices):
        PROMPT = "prompt", "For a prompt"
        ADAPTER = "adapter", "Similar to an adapter"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    adapter = models.ForeignKey("adapters.Adapter", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.user_id} accepted adapter {self.adapter_id} ({self.kind})"


class TrackedRun(models.Model):
    """Background work a person watches: scans, embedding runs, archive runs share these fields and
    one start / execute / reconcile (``lora_manager.runs``). A concrete run names, as class attributes,
    the queue and RQ job that execute it and the channel group its progress goes to."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    ACTIVE = ("queued", "running")

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    phase = models.CharField(max_length=32, blank=True)
    done = models.PositiveBigIntegerField(default=0)
    total = models.PositiveBigIntegerField(default=0)
    message = models.TextField(blank=True)
    rq_job_id = models.CharField(max_length=100, blank=True)  # "<prefix>-<pk>", or "local:<host>:<pid>"
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    # What each kind of run names (class attributes, not fields):
    queue_name = "default"  # the RQ queue its job runs on
    job_path = ""  # dotted path of the RQ job, called with the row's id
    job_id_prefix = "run"  # the RQ job id is "<prefix>-<pk>"
    progress_group = ""  # channel group of its progress, with "{pk}"
    noun = "run"  # in messages: "the worker stopped before this scan finished"
    again = "start it again"  # what a person can do after a failure nobody saw coming

    class Meta:
        abstract = True
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.noun} #{self.pk} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def percent(self) -> int:
        if self.total:
            return min(100, int(100 * self.done / self.total))
        return 0 if self.is_active else 100
