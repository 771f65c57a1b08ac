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
